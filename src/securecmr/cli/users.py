"""``securecmr users create|list|show|update|token|revoke``: the users of a store (needs the
store passphrase). Creating a user that exists is an error (``--exist-ok`` leaves it as it is);
role, tenant and attribute changes go through ``users update`` and are audited."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import group
from ._common import JSON, STORE, emit, iso, parse_pairs, table
from ._common import open_store as _open

__all__ = ["open_store", "register"]

users_app = group("Create, list, change and revoke users (tokens are printed once).")

NAME = Annotated[str, typer.Argument(metavar="NAME", help="The user's name.")]
TTL = Annotated[float, typer.Option("--ttl-hours", help="Token lifetime in hours.", min=0.001)]


def open_store(path: Path) -> Any:
    """``securecmr.Store.open(path, passphrase=...)``; the passphrase comes from SECURECMR_PASSPHRASE
    or an interactive prompt (never from a command-line argument, which would land in shell history)."""
    return _open(path)


def _parse_attrs(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (see :func:`securecmr.cli._common.parse_pairs`)."""
    from ..errors import ConfigurationError

    try:
        return parse_pairs(pairs, "--attr")
    except Exception as exc:  # the usage error of the command line, as the API's error
        raise ConfigurationError(str(exc)) from None


def _shown(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        **rec,
        "created_at": iso(rec["created_at"]),
        "revoked_at": iso(rec["revoked_at"]),
        "expires_at": iso(rec["expires_at"]),
    }


def _token_out(as_json: bool, name: str, token: str, ttl_hours: float, what: str) -> None:
    if as_json:
        emit(True, {"user": name, "token": token, "ttl_hours": ttl_hours}, "")
        return
    typer.echo(f"{what} {name}; token (shown once, only its hash is kept):", err=True)
    typer.echo(token)


def _create(
    store: STORE,
    name: NAME,
    role: Annotated[str, typer.Option("--role", help="admin, curator, reader, auditor or a custom role.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="The user's tenant.")] = None,
    attr: Annotated[
        list[str] | None, typer.Option("--attr", help="KEY=VALUE user attribute for policies (repeatable).")
    ] = None,
    ttl_hours: TTL = 24.0 * 90,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="If the user exists, leave it unchanged (no token).")
    ] = False,
    as_json: JSON = False,
) -> None:
    """Create a user and print their token once (Store.create_user). An existing user is an
    error; change one with 'users update'."""
    attrs = parse_pairs(attr or [], "--attr")
    with _open(store) as st:
        token = st.create_user(
            name, role=role, tenant=tenant, attrs=attrs or None, ttl_hours=ttl_hours, exist_ok=exist_ok
        )
    if token is None:
        emit(as_json, {"user": name, "created": False}, f"user {name} exists; left unchanged")
        return
    _token_out(as_json, name, token, ttl_hours, "created user")


users_app.command("create")(_create)
users_app.command("add", hidden=True)(_create)  # older name


@users_app.command("list")
def list_cmd(store: STORE, as_json: JSON = False) -> None:
    """List the users (Store.users): role, tenant, attributes, tokens, dates."""
    with _open(store) as st:
        recs = [_shown(r) for r in st.users()]
    emit(
        as_json,
        recs,
        lambda: (
            table(
                ["name", "role", "tenant", "attrs", "tokens", "expires", "created", "revoked"],
                [
                    [
                        r["name"],
                        r["role"],
                        r["tenant"] or "",
                        ", ".join(f"{k}={v}" for k, v in sorted(r["attrs"].items())),
                        r["tokens"],
                        r["expires_at"] or "",
                        r["created_at"],
                        r["revoked_at"] or "",
                    ]
                    for r in recs
                ],
            )
            if recs
            else "no users"
        ),
    )


@users_app.command("show")
def show_cmd(store: STORE, name: NAME, as_json: JSON = False) -> None:
    """Show one user (Store.user)."""
    with _open(store) as st:
        rec = _shown(st.user(name))
    emit(as_json, rec, lambda: "\n".join(f"{k:<10} {'' if v is None else v}" for k, v in rec.items()))


@users_app.command("update")
def update_cmd(
    store: STORE,
    name: NAME,
    role: Annotated[str | None, typer.Option("--role", help="The new role.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="The new tenant.")] = None,
    no_tenant: Annotated[bool, typer.Option("--no-tenant", help="Take the user out of any tenant.")] = False,
    attr: Annotated[
        list[str] | None,
        typer.Option("--attr", help="KEY=VALUE attributes; replace all the user's attributes (repeatable)."),
    ] = None,
    clear_attrs: Annotated[bool, typer.Option("--clear-attrs", help="Remove all attributes.")] = False,
    as_json: JSON = False,
) -> None:
    """Change a user's role, tenant or attributes (Store.update_user); audited, tokens kept."""
    from ._common import usage

    if tenant is not None and no_tenant:
        raise usage("give --tenant or --no-tenant, not both")
    if attr and clear_attrs:
        raise usage("give --attr or --clear-attrs, not both")
    if role is None and tenant is None and not no_tenant and not attr and not clear_attrs:
        raise usage("nothing to change: give --role, --tenant, --no-tenant, --attr or --clear-attrs")
    kwargs: dict[str, Any] = {"role": role}
    if tenant is not None or no_tenant:
        kwargs["tenant"] = tenant
    if attr or clear_attrs:
        kwargs["attrs"] = parse_pairs(attr or [], "--attr")
    with _open(store) as st:
        rec = _shown(st.update_user(name, **kwargs))
    emit(as_json, rec, f"updated {name}: role {rec['role']}, tenant {rec['tenant'] or '-'}")


@users_app.command("token")
def token_cmd(store: STORE, name: NAME, ttl_hours: TTL = 24.0 * 90, as_json: JSON = False) -> None:
    """Issue another token to an existing user (Store.issue_token); earlier tokens stay valid."""
    with _open(store) as st:
        token = st.issue_token(name, ttl_hours=ttl_hours)
    _token_out(as_json, name, token, ttl_hours, "new token for")


@users_app.command("revoke")
def revoke_cmd(store: STORE, name: NAME, as_json: JSON = False) -> None:
    """Revoke every token of a user (Store.revoke_user)."""
    with _open(store) as st:
        st.revoke_user(name)
    emit(as_json, {"user": name, "revoked": True}, f"revoked {name}")


roles_app = group("List and define roles (custom roles add permissions, a policy, a k cap).")


@roles_app.command("list")
def roles_list(store: STORE, as_json: JSON = False) -> None:
    """List the built-in and custom roles (Store.roles)."""
    with _open(store) as st:
        recs = st.roles()
    emit(
        as_json,
        recs,
        lambda: table(
            ["name", "permissions", "policy", "max k", "builtin"],
            [
                [r["name"], ",".join(r["permissions"]), r["policy"] or "", r["max_k"] or "",
                 "yes" if r["builtin"] else ""]
                for r in recs
            ],
        ),
    )  # fmt: skip


@roles_app.command("create")
def roles_create(
    store: STORE,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The role's name.")],
    permission: Annotated[
        list[str],
        typer.Option(
            "--permission", "-p", help="search, add, delete, manage, read_audit or export (repeatable)."
        ),
    ],
    policy: Annotated[
        str | None, typer.Option("--policy", help="Record-level policy every holder is bound by.")
    ] = None,
    max_k: Annotated[int | None, typer.Option("--max-k", help="Most hits per search.", min=1)] = None,
    round_to: Annotated[float, typer.Option("--round-to", help="Round scores down to this step.")] = 0.0,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a custom role of that name.")] = False,
    as_json: JSON = False,
) -> None:
    """Define a custom role (Store.add_role); an existing name is an error unless --replace."""
    from ..access import Role
    from ..errors import ConfigurationError

    role = Role.create(name, permission, policy=policy, max_k=max_k, round_to=round_to)
    with _open(store) as st:
        if not replace and any(r["name"] == name for r in st.roles()):
            raise ConfigurationError(f"a role named {name!r} exists; pass --replace to redefine it")
        st.add_role(role)
    emit(
        as_json,
        role.to_dict(),
        f"defined role {name}: {', '.join(sorted(p.value for p in role.permissions))}",
    )


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(roles_app, name="roles")
