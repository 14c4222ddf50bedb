"""legion-guard-budget: spend limits as a before/after-chat guard.

The plugin object registered under the `legion` entry point is `legion_guard_budget.plugin:plugin`.
"""

from legion_guard_budget.guard import BudgetGuard
from legion_guard_budget.settings import BudgetSettings

__all__ = ["BudgetGuard", "BudgetSettings"]
