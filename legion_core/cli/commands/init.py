"""`legion init`: a commented starter settings file for a chosen set of providers."""

from __future__ import annotations

import click

from legion_core.lifecycle import legion_home

#: One commented block per provider: (comment, JSON body). Credentials are references, never values.
PROVIDERS: dict[str, tuple[str, str]] = {
    "llamacpp": ("embedded local model (no server, no key): SmolLM2-135M by default; set model_path for any GGUF",
                 '{ "type": "llamacpp", "tier": "local" }'),
    "ollama": ("a local Ollama server; models are discovered from /api/tags",
               '{ "type": "ollama", "tier": "local", "base_url": "http://localhost:11434", "default_model": "llama3.2" }'),
    "vllm": ("a vLLM (or any OpenAI-compatible) server; use tier openai_compat for LM Studio/LocalAI",
             '{ "type": "vllm", "tier": "fleet", "base_url": "http://localhost:8000/v1" }'),
    "openai": ("OpenAI; the key is read from the environment at boot",
               '{ "type": "openai", "tier": "frontier", "api_key": "env://OPENAI_API_KEY", "default_model": "gpt-4o-mini" }'),
    "anthropic": ("Anthropic; a fallback chain: Vault first, then the environment",
                  '{ "type": "anthropic", "tier": "frontier", "api_key": ["vault://secret/legion/anthropic#api_key", "env://ANTHROPIC_API_KEY"], "default_model": "claude-haiku-4-5" }'),
    "bedrock": ("AWS Bedrock (SigV4 from the usual AWS variables, or a bearer token)",
                '{ "type": "bedrock", "tier": "cloud", "region": "us-east-2", "api_key": "env://AWS_ACCESS_KEY_ID", "secret_key": "env://AWS_SECRET_ACCESS_KEY" }'),
}


def render(providers: list[str], strategy: str) -> str:
    lines = [
        "// Legion settings. Files in this directory are deep-merged in sorted order.",
        "// `//` comments are allowed. Secrets are references: env://NAME, vault://path#key,",
        "// or an array of them (the first that resolves wins). See docs/settings.md.",
        "{",
        '  "llm": {',
        "    // cost_optimized | latency_optimized | round_robin",
        f'    "routing": {{ "strategy": "{strategy}", "rules": [',
        "      // Example: never send private requests to the cloud.",
        '      { "name": "private-stays-home", "when": { "privacy": "strict" }, "constraint": "never_cloud", "priority": 100 }',
        "    ] },",
        '    "cache": { "enabled": true, "ttl_seconds": 86400 },',
        '    "providers": {',
    ]
    for i, name in enumerate(providers):
        comment, body = PROVIDERS[name]
        comma = "," if i < len(providers) - 1 else ""
        lines.append(f"      // {comment}")
        lines.append(f'      "{name}": {body}{comma}')
    lines += ["    },", '    "api": { "host": "127.0.0.1", "port": 4567, "auth": { "enabled": false, "api_keys": [] } }',
              "  }", "}", ""]
    return "\n".join(lines)


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--providers", "-p", default="llamacpp", show_default=True,
                  help=f"Comma-separated: {', '.join(PROVIDERS)}.")
    @click.option("--strategy", type=click.Choice(["cost_optimized", "latency_optimized", "round_robin"]),
                  default="cost_optimized", show_default=True)
    @click.option("--file", "filename", default="10-legion.json", show_default=True,
                  help="File name inside the settings directory.")
    @click.option("--force", is_flag=True, help="Overwrite an existing file.")
    @click.option("--stdout", "to_stdout", is_flag=True, help="Print instead of writing.")
    def init(providers: str, strategy: str, filename: str, force: bool, to_stdout: bool) -> None:
        """Write a commented starter settings file.

        \b
        Examples:
          legion init
          legion init --providers ollama,openai,anthropic
          legion init -p vllm --stdout
        """
        chosen = [p.strip() for p in providers.split(",") if p.strip()]
        unknown = [p for p in chosen if p not in PROVIDERS]
        if unknown or not chosen:
            raise click.BadParameter(f"unknown provider(s) {', '.join(unknown) or '(none)'}; "
                                     f"choose from {', '.join(PROVIDERS)}", param_hint="--providers")
        text = render(chosen, strategy)
        if to_stdout:
            click.echo(text, nl=False)
            return
        path = legion_home() / "settings" / filename
        if path.exists() and not force:
            raise click.ClickException(f"{path} exists; use --force to overwrite or --file to pick another name")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        click.echo(f"wrote {path}")
        click.echo("next: `legion config check`, then `legion chat`")
