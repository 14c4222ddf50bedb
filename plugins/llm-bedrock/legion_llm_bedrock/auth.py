"""Request authentication: SigV4 (signed by botocore) or a Bedrock API key (bearer token).

SigV4 signs the exact bytes we send — method, URL, the `Content-Type`/`Accept`/`Host`/`X-Amz-*`
headers and the body hash — so the headers returned here must go out unchanged with that body.
"""

from __future__ import annotations

from dataclasses import dataclass

from legion_core.log import redact


@dataclass(frozen=True, repr=False)
class AwsAuth:
    region: str
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    bearer_token: str | None = None

    def __post_init__(self) -> None:
        for v in (self.secret_key, self.session_token, self.bearer_token):
            redact(v)

    def __repr__(self) -> str:  # never show a credential
        return f"AwsAuth(region={self.region!r}, mode={self.mode!r})"

    @property
    def mode(self) -> str:
        return "bearer" if self.bearer_token else "sigv4"

    def headers(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """The request headers with authentication added."""
        if self.bearer_token:
            return {**headers, "Authorization": f"Bearer {self.bearer_token}"}
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        req = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(Credentials(self.access_key, self.secret_key, self.session_token),
                  "bedrock", self.region).add_auth(req)
        return dict(req.headers.items())
