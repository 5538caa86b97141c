"""Connecting to Ray, the optional engine that spreads scans and training over machines.

Ray is an optional extra (``pip install "qsaudit[ray]"``): it is imported only here, only when
``--engine ray`` is asked for, so ``qsaudit --help`` never loads it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from qsaudit.errors import QsauditError, UsageError

ENGINES = ("local", "ray")
INSTALL_HINT = 'the Ray engine needs the optional extra: pip install "qsaudit[ray]"'


def check_engine(engine: str, ray_only: dict[str, Any] | None = None) -> None:
    """Raise :class:`UsageError` for an unknown engine, for Ray options (flag -> value, None
    when not given) without ``--engine ray``, and for ``ray`` when Ray is not installed."""
    if engine not in ENGINES:
        raise UsageError(f'--engine "{engine}": choose from {", ".join(ENGINES)}')
    given = [flag for flag, value in (ray_only or {}).items() if value is not None]
    if given and engine != "ray":
        raise UsageError(f"{', '.join(given)}: only with --engine ray")
    if engine == "ray":
        require_ray()


def require_ray() -> Any:
    """The ``ray`` module; :class:`UsageError` saying how to install it when it is missing."""
    try:
        import ray
        import ray.exceptions  # the error types the engines translate
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Yield ``ray``, connected: to the cluster at ``address``, else to a new local instance.

    A process already connected (e.g. a notebook or a test that called ``ray.init``) keeps its
    connection, and it is left open; a connection made here is closed on exit (a local
    instance started here stops with it).
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if not address:  # "local": a fresh instance on this machine, never someone else's cluster
        options["include_dashboard"] = False
    # Ray's C++ core logs warnings of its own on stderr (e.g. that an actor's constructor reads
    # the object store, which the scan keeps alive on purpose); failures reach us as exceptions
    quiet = "RAY_BACKEND_LOG_LEVEL" not in os.environ
    if quiet:
        os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    try:
        ray.init(address=address or "local", **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f'Ray cluster "{address}"' if address else "a local Ray instance"
        raise UsageError(f"{where}: cannot connect ({first_line(exc)})") from None
    finally:
        if quiet:
            del os.environ["RAY_BACKEND_LOG_LEVEL"]
    try:
        yield ray
    finally:
        ray.shutdown()


def node_name() -> str:
    """This node as a user knows it: ``host (ip)``."""
    try:
        import ray

        ip = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - a name is all this is for
        ip = "?"
    return f"{socket.gethostname()} ({ip})"


def task_error(exc: BaseException, *, what: str) -> QsauditError:
    """One qsaudit error for a failed Ray task or actor call about ``what`` (e.g. a case).

    A qsaudit error raised on a worker comes back as itself; a worker or actor that died more
    often than it is retried, or any other failure, becomes one line that says so.
    """
    import ray.exceptions as rex

    cause = getattr(exc, "cause", None)
    if isinstance(cause, QsauditError):
        return cause
    if isinstance(exc, rex.ActorDiedError | rex.WorkerCrashedError | rex.ActorUnavailableError
                  | rex.NodeDiedError | rex.ObjectLostError):
        return QsauditError(f"{what}: a Ray worker died and its retries ran out "
                            f"({type(exc).__name__}); committed results are kept: run the same "
                            "command again to resume")
    inner = cause if cause is not None else exc
    return QsauditError(f"{what}: {type(inner).__name__}: {first_line(inner)}")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (Ray's are long), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
