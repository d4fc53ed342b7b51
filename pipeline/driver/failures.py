"""The failure messages of a run stopped from outside: the store stopped answering, or a credential
was refused. Each says which store, what failed and what to do; neither ever prints a credential."""

from __future__ import annotations

from pipeline.config import RunConfig
from pipeline.errors import AccessDenied, StoreUnavailable
from pipeline.storage import Store


def store_unavailable(config: RunConfig, store: Store, exc: BaseException) -> StoreUnavailable:
    """The one message of a run stopped by a store outage: which store, what failed, what to do."""
    from pipeline.storage import S3_RETRIES, options_for

    options = options_for(store.uri(), config.storage_options) if "://" in store.uri() else {}
    endpoint = options.get("endpoint_url") or (options.get("client_kwargs") or {}).get("endpoint_url")
    retries = ((config.storage_options or {}).get("s3") or {}).get("retries", S3_RETRIES)
    cause = next((line for line in str(exc).splitlines() if "connect" in line.lower()), str(exc).splitlines()[0]
                 if str(exc) else type(exc).__name__)
    return StoreUnavailable(
        f"the store {store.uri()}" + (f" (endpoint {endpoint})" if endpoint else "") +
        f" stopped answering: {cause.strip()[:300]}. Each request was tried {retries} times with backoff; the run "
        "stopped without publishing and LATEST is untouched. Parsed files and extracted parts already written are "
        "kept: run the same command again once the store answers (raise storage_options.s3.retries to ride out "
        "longer outages).")


def access_denied(config: RunConfig, exc: BaseException) -> AccessDenied:
    """The one message of a run whose credentials were refused: where it reads and writes, where
    credentials come from, never the credentials themselves."""
    first = (str(exc).splitlines() or [type(exc).__name__])[0].strip()[:200] or type(exc).__name__
    models = [u for u in (config.extract.model, config.extract.normalizer) if u and "://" in u]
    return AccessDenied(
        f"access was refused ({type(exc).__name__}: {first}) while the run read its inputs "
        f"({', '.join(config.inputs)[:200]}){', its models (' + ', '.join(models) + ')' if models else ''} or wrote "
        f"the store {config.store}. Check the credentials pubmine finds for them and that they may read and write "
        "there: for S3 the standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and "
        "~/.aws/credentials, an instance or pod role) or storage_options.s3.key / secret. Nothing was published; "
        "LATEST is untouched.")
