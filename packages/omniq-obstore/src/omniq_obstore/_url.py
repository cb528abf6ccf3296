"""Parse ``memory://``, ``file://``, ``s3://``, ``gs://`` and ``az://`` URIs into store settings."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from omniq.errors import ConfigError

if TYPE_CHECKING:
    from obstore.store import ObjectStore

__all__ = ["CLIENT_OPTIONS", "CLOUD_SCHEMES", "StoreURL", "cloud_store", "parse_url"]

CLOUD_SCHEMES = ("s3", "gs", "az")
SCHEMES = ("memory", "file", *CLOUD_SCHEMES)

CLIENT_OPTIONS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "http1_only",
        "http2_keep_alive_interval",
        "http2_keep_alive_timeout",
        "http2_keep_alive_while_idle",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_ca_certificate",
        "proxy_excludes",
        "proxy_url",
        "randomize_addresses",
        "read_timeout",
        "timeout",
        "user_agent",
    }
)
"""Query options that go to obstore's HTTP ``client_options``; every other option goes to the
store's ``config`` (``endpoint``, ``region``, ``skip_signature``, …) and obstore validates it."""

_FORMS = (
    "memory://[name], file:///absolute/dir, s3://bucket/prefix, gs://bucket/prefix "
    "or az://container/prefix"
)


@dataclass(frozen=True)
class StoreURL:
    """What a storage URI says.

    Attributes:
        scheme: ``memory``, ``file``, ``s3``, ``gs`` or ``az``.
        name: ``memory``: the store's name in this process (``""`` = the default store).
        path: ``file``: the absolute directory.
        base: cloud: the URI without its query, as obstore's ``from_url`` takes it.
        config: cloud: store configuration from the query.
        client_options: cloud: HTTP client options from the query.
        display: the URI without query values (for messages and ``repr``; never secrets).
    """

    scheme: str
    name: str = ""
    path: str = ""
    base: str = ""
    config: dict[str, str] = field(default_factory=dict)
    client_options: dict[str, str] = field(default_factory=dict)
    display: str = ""


def _options(url: str, query: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key in options:
            raise ConfigError(f"storage URI option {key!r} is given more than once in {url!r}")
        options[key] = value
    return options


def parse_url(url: str) -> StoreURL:
    """Parse an object-store URI.

    Raises:
        ConfigError: saying what is wrong (scheme, missing bucket, relative path, options).
    """
    if not isinstance(url, str):
        raise ConfigError(f"storage URI must be a string, got {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise ConfigError(f"not an object-store URI: {url!r}; expected {_FORMS}")
    parts = urllib.parse.urlsplit(url)
    if parts.fragment:
        raise ConfigError(f"storage URI {url!r} has a fragment (#{parts.fragment}); remove it")
    if scheme == "memory":
        if parts.query:
            raise ConfigError(f"memory:// URIs take no options, got {parts.query!r} in {url!r}")
        name = urllib.parse.unquote(rest).strip("/")
        return StoreURL(scheme, name=name, display=f"memory://{name}")
    if scheme == "file":
        return _file(url, parts)
    if not parts.netloc:
        what = "container" if scheme == "az" else "bucket"
        raise ConfigError(f"storage URI {url!r} names no {what}; expected {scheme}://{what}/prefix")
    options = _options(url, parts.query)
    client = {k: v for k, v in options.items() if k in CLIENT_OPTIONS}
    config = {k: v for k, v in options.items() if k not in CLIENT_OPTIONS}
    base = urllib.parse.urlunsplit((scheme, parts.netloc, parts.path, "", ""))
    shown = base + ("?" + "&".join(f"{k}=…" for k in options) if options else "")
    return StoreURL(scheme, base=base, config=config, client_options=client, display=shown)


def _file(url: str, parts: urllib.parse.SplitResult) -> StoreURL:
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"file URI {url!r} names a host ({parts.netloc!r}); use file:///absolute/dir"
        )
    if parts.query:
        raise ConfigError(f"file:// URIs take no options, got {parts.query!r} in {url!r}")
    path = urllib.parse.unquote(parts.path)
    if not path or not PurePosixPath(path).is_absolute() or path == "/":
        raise ConfigError(
            f"file URI {url!r} needs an absolute directory other than /; use file:///absolute/dir"
        )
    if any(p in ("..", ".") for p in PurePosixPath(path).parts):
        raise ConfigError(f"file URI {url!r} contains '.' or '..'; give a normalised path")
    return StoreURL("file", path=path.rstrip("/") or "/", display=f"file://{path}")


def cloud_store(spec: StoreURL) -> ObjectStore:
    """Build the S3, GCS or Azure store of ``spec`` with obstore's ``from_url`` (offline).

    Credentials not given as options come from the usual environment variables.

    Raises:
        ConfigError: when obstore refuses the URI or an option (the message is obstore's).
    """
    from obstore.store import from_url

    kwargs: dict[str, Any] = {}
    if spec.config:
        kwargs["config"] = spec.config
    if spec.client_options:
        kwargs["client_options"] = spec.client_options
    try:
        return from_url(spec.base, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # obstore raises ValueError, its own errors, or a Rust panic
        text = str(exc).split("\n", 1)[0]
        raise ConfigError(f"cannot use storage URI {spec.display!r}: {text}") from None
