"""AWS Signature Version 4 on incoming requests, implemented from the published specification.

The canonical request is rebuilt from what arrived (method, path, query, the signed headers, SHA-256
of the body), then the string to sign and the derived key (AWS4+secret -> date -> region ->
"rekognition" -> "aws4_request"); signatures are compared in constant time. Host, X-Amz-Date and
X-Amz-Target must be signed, so a captured request cannot be replayed as another operation; requests
older or newer than 15 minutes are refused. Errors, all HTTP 400 as AWS's JSON services answer them:
MissingAuthenticationTokenException (no Authorization header), IncompleteSignatureException
(malformed), UnrecognizedClientException (unknown key id), InvalidSignatureException (wrong
signature, expired, wrong scope).

No HTTP framework here: `SignedRequest` is what the transport hands over, so the checks can be tested
on known vectors.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote

from picsort_local.errors import AwsError
from picsort_local.settings import RekognitionSettings

SERVICE = "rekognition"
MAX_CLOCK_SKEW = timedelta(minutes=15)
ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_REQUIRED_SIGNED = ("host", "x-amz-date", "x-amz-target")
_INCOMPLETE = "IncompleteSignatureException"
_INVALID = "InvalidSignatureException"


@dataclass(frozen=True)
class SignedRequest:
    """What arrived, as the signer saw it: raw (still percent-encoded) path and query."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), in arrival order
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        return ",".join(values) if values else None


@dataclass(frozen=True)
class _Authorization:
    """The parsed Authorization header."""

    key_id: str
    date: str
    region: str
    service: str
    terminal: str
    signed_headers: list[str]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_request(req: SignedRequest, signed_headers: list[str]) -> str:
    # Services other than S3 sign the path URI-encoded once more on top of its wire encoding.
    path = quote(req.path or "/", safe="/~")
    lines = []
    for name in signed_headers:
        values = [" ".join(v.split()) for k, v in req.headers if k == name]
        lines.append(f"{name}:{','.join(values)}\n")
    payload_hash = hashlib.sha256(req.body).hexdigest()
    return "\n".join([req.method.upper(), path, _canonical_query(req.query), "".join(lines),
                      ";".join(signed_headers), payload_hash])


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])


def _parse_authorization(value: str) -> _Authorization:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AwsError(_INCOMPLETE, f"Unsupported authorization algorithm {algorithm[:40]!r}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise AwsError(_INCOMPLETE, f"Authorization header requires {', '.join(missing)} parameter(s)")
    credential = fields["Credential"].split("/")
    if len(credential) != 5:
        raise AwsError(_INCOMPLETE,
                       "Credential must have the form <key id>/<date>/<region>/<service>/aws4_request")
    key_id, date, region, service, terminal = credential
    return _Authorization(key_id, date, region, service, terminal, fields["SignedHeaders"].split(";"),
                          fields["Signature"])


def _check_form(auth: _Authorization, req: SignedRequest) -> None:
    """The header is well formed and signs what must be signed (IncompleteSignatureException)."""
    if auth.terminal != "aws4_request":
        raise AwsError(_INCOMPLETE, "Credential scope must end with aws4_request")
    signed = auth.signed_headers
    if signed != sorted(signed) or any(not h or h != h.lower() for h in signed):
        raise AwsError(_INCOMPLETE, "SignedHeaders must be sorted lower-case header names")
    for name in _REQUIRED_SIGNED:
        if name not in signed:
            raise AwsError(_INCOMPLETE, f"'{name}' must be a signed header")
    if any(req.header(h) is None for h in signed):
        raise AwsError(_INCOMPLETE, "a signed header is missing from the request")


def _check_time(auth: _Authorization, amz_date: str, now: datetime) -> None:
    """X-Amz-Date is well formed, matches the scope's date and is within the allowed clock skew."""
    try:
        when = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise AwsError(_INCOMPLETE, "X-Amz-Date must be in ISO 8601 basic format") from None
    if auth.date != amz_date[:8]:
        raise AwsError(_INVALID, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                       f"date from HTTP: '{auth.date[:8]}' != '{amz_date[:8]}'")
    if when < now - MAX_CLOCK_SKEW:
        raise AwsError(_INVALID, f"Signature expired: {amz_date} is now earlier than "
                       f"{(now - MAX_CLOCK_SKEW).strftime(AMZ_DATE_FORMAT)}")
    if when > now + MAX_CLOCK_SKEW:
        raise AwsError(_INVALID, f"Signature not yet current: {amz_date} is still later than "
                       f"{(now + MAX_CLOCK_SKEW).strftime(AMZ_DATE_FORMAT)}")


class SigV4Verifier:
    """Checks AWS Signature Version 4 on incoming requests against a set of access keys."""

    def __init__(self, keys: Mapping[str, str], *, region: str = "", service: str = SERVICE,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._keys = {k: v for k, v in keys.items() if k and v}
        self._region = region
        self._service = service
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    @classmethod
    def from_settings(cls, settings: RekognitionSettings) -> SigV4Verifier:
        keys = {settings.access_key_id: settings.secret_access_key.get_secret_value()}
        return cls(keys, region=settings.region)

    def _secret(self, key_id: str) -> str | None:
        found = None
        # Constant-time comparison of every configured id, so timing does not reveal a valid prefix.
        for known, secret in self._keys.items():
            if hmac.compare_digest(known.encode(), key_id.encode()):
                found = secret
        return found

    def _check_scope(self, auth: _Authorization) -> None:
        if self._region and auth.region != self._region:
            raise AwsError(_INVALID,
                           f"Credential should be scoped to a valid region, not '{auth.region[:40]}'.")
        if auth.service != self._service:
            raise AwsError(_INVALID, f"Credential should be scoped to correct service: '{self._service}'.")

    def verify(self, req: SignedRequest) -> str:
        """The access key id that signed `req`; raises AwsError when it is not validly signed."""
        header = req.header("authorization")
        if not header:
            raise AwsError("MissingAuthenticationTokenException", "Missing Authentication Token")
        auth = _parse_authorization(header)
        _check_form(auth, req)
        secret = self._secret(auth.key_id)
        if secret is None:
            raise AwsError("UnrecognizedClientException",
                           "The security token included in the request is invalid.")
        amz_date = req.header("x-amz-date") or ""
        _check_time(auth, amz_date, self._clock())
        self._check_scope(auth)
        expected = hmac.new(signing_key(secret, auth.date, auth.region, auth.service),
                            string_to_sign(amz_date, auth.scope, canonical_request(req, auth.signed_headers))
                            .encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
            raise AwsError(_INVALID, "The request signature we calculated does not match the signature you "
                           "provided. Check your AWS Secret Access Key and signing method. Consult the "
                           "service documentation for details.")
        return auth.key_id


__all__ = ["SigV4Verifier", "SignedRequest", "canonical_request", "signing_key", "string_to_sign"]
