"""The ``dsfeatures`` command: serve, apply registry definitions, create the DynamoDB table,
print the OpenAPI document."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec
import orjson

from dsfeatures.errors import DSFError

if TYPE_CHECKING:
    from dsfeatures.config import Config
    from dsfeatures.stores.dynamodb import TableSetup

__all__ = ["main"]


@click.group()
@click.version_option(package_name="dsfeatures")
def main() -> None:
    """dsfeatures: an online feature store."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file.")
@click.option("--host", help="Address to bind (DSF_HOST).")
@click.option("--port", type=int, help="Port (DSF_PORT).")
@click.option("--workers", type=int, help="Worker processes (DSF_WORKERS).")
@click.option("--data-dir", help="Folder of the embedded stores (DSF_DATA_DIR).")
@click.option("--demo", is_flag=True, help="Load a small demo dataset before serving.")
def serve(
    config_path: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    data_dir: str | None,
    demo: bool,
) -> None:
    """Run the daemon (embedded stores unless the config names DynamoDB, ValKey, OpenSearch)."""
    from dsfeatures.config import load_config
    from dsfeatures.server import serve as run

    try:
        config = load_config(
            config_path,
            overrides={
                "server": {"host": host, "port": port, "workers": workers, "data_dir": data_dir}
            },
        )
    except DSFError as e:
        raise click.ClickException(e.message) from None
    if demo:
        n = asyncio.run(_load_demo(config))
        click.echo(f"demo data loaded: {n} rows (riders r1..r100, drivers d1..d50)")
    try:
        run(config)
    except DSFError as e:
        raise click.ClickException(e.message) from None


async def _load_demo(config: Any) -> int:
    from dsfeatures.demo import load_demo
    from dsfeatures.service.core import Service

    svc = await Service.open(config)
    try:
        return await load_demo(svc)
    finally:
        await svc.close()


@main.group()
def registry() -> None:
    """Work with the feature registry of a running daemon."""


@registry.command("apply")
@click.argument("directory", type=click.Path(exists=True, file_okay=True, path_type=Path))
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="Daemon URL.")
@click.option("--token", envvar="DSF_TOKEN", help="API token (DSF_TOKEN).")
def registry_apply(directory: Path, url: str, token: str | None) -> None:
    """Register every *.json group definition under DIRECTORY (or one file)."""
    from dsfeatures.client import Client
    from dsfeatures.registry.models import FeatureGroup

    files = [directory] if directory.is_file() else sorted(directory.rglob("*.json"))
    if not files:
        raise click.ClickException(f"no .json files under {directory}")
    groups = []
    for f in files:
        try:
            groups.append((f, msgspec.json.decode(f.read_bytes(), type=FeatureGroup)))
        except msgspec.DecodeError as e:  # ValidationError is a DecodeError
            raise click.ClickException(f"{f}: {e}") from None
    failed = 0
    with Client(url, token=token) as client:
        for f, g in groups:
            try:
                resp = client.register_group(g)
            except DSFError as e:
                failed += 1
                click.echo(f"{f}: {g.name}@{g.version}: {e.code}: {e.message}", err=True)
                continue
            click.echo(f"{f}: {g.name}@{g.version}: {resp.status}")
    if failed:
        sys.exit(1)


@main.group()
def dynamodb() -> None:
    """Manage the DynamoDB table of the persistent store."""


@dynamodb.command("create-table")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file.")
@click.option("--table", help="Table name (DSF_DYNAMODB_TABLE).")
@click.option("--endpoint", help="Endpoint URL of a local server (DSF_DYNAMODB_ENDPOINT).")
@click.option("--region", help="AWS region (DSF_AWS_REGION).")
def dynamodb_create_table(
    config_path: str | None, table: str | None, endpoint: str | None, region: str | None
) -> None:
    """Create the table named by the config if it is missing, and enable its TTL.

    Idempotent: an existing table with the right keys is left as it is.
    """
    from dsfeatures.config import load_config

    try:
        config = load_config(
            config_path,
            overrides={"dynamodb": {"table": table, "endpoint": endpoint, "region": region}},
        )
        if not config.dynamodb.table:
            raise click.ClickException(
                "no table named: set dynamodb.table in --config, DSF_DYNAMODB_TABLE or --table"
            )
        setup = asyncio.run(_create_table(config))
    except DSFError as e:
        raise click.ClickException(e.message) from None
    state = "created" if setup.created else "already exists"
    click.echo(f"table {config.dynamodb.table}: {state}; TTL on attribute ttl: {setup.ttl}")


async def _create_table(config: Config) -> TableSetup:
    from dsfeatures.stores.dynamodb import DynamoTable, create_table

    table = DynamoTable(config.dynamodb)
    await table.open(check=False)
    try:
        return await create_table(table.client, table.name)
    finally:
        await table.close()


@main.command()
def openapi() -> None:
    """Print the OpenAPI document."""
    from dsfeatures.api.app import package_version
    from dsfeatures.api.openapi import openapi_document

    click.echo(orjson.dumps(openapi_document(package_version()), option=orjson.OPT_INDENT_2))


@main.group()
def token() -> None:
    """Make API tokens (the daemon keeps only their hashes)."""


@token.command("new")
@click.option("--name", required=True, help="Who the token is for (shown in audit records).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="read, admin, write:*, write:group:NAME or write:team:TEAM (repeatable).",
)
def token_new(name: str, scopes: tuple[str, ...]) -> None:
    """Print a new token (give it to the caller) and its tokens-file entry (for the daemon)."""
    import json

    from dsfeatures.service.auth import hash_token, is_scope, new_token

    bad = [s for s in scopes if not is_scope(s)]
    if bad:
        raise click.BadParameter(f"unknown scope {bad[0]!r}", param_hint="--scope")
    secret = new_token()
    click.echo(f"token (shown once): {secret}", err=True)
    # JSON string literals are valid TOML basic strings.
    scope_list = ", ".join(json.dumps(s) for s in scopes)
    click.echo(
        f"[[tokens]]\nname = {json.dumps(name)}\nsha256 = {json.dumps(hash_token(secret))}\n"
        f"scopes = [{scope_list}]"
    )
