"""``inspector models`` and ``inspector recipes``: the release lifecycle, each step signed and audited.

A model package (``models/<product>/<version>/``) or a recipe file is registered by an
engineer (signature "authored"), reviewed by another person, approved by QA (not its author),
and retired when superseded. Each step re-authenticates the signer (password asked for, or
``--password-stdin``) and binds the signature to the object's content hash: a package digest
over ``model.onnx`` and ``record.json``, a recipe file's SHA-256. ``recipes edit`` writes a new
recipe version (never an edit in place of an approved one) and registers it as a draft.
A production station runs only approved objects with exactly these hashes.

    inspector models register --model models/vial/1.6.0 --as erin --reason "retrained from batch 12 rejects"
    inspector models review --model models/vial/1.6.0 --as quinn --reason "evaluation report EV-112 checked"
    inspector models approve --model models/vial/1.6.0 --as rosa --reason "release per change CC-2026-031"
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inspector.cli.common import (
    CliError,
    Subparsers,
    add_command,
    add_credentials,
    add_database_argument,
    add_json_option,
    database,
    emit_json,
    gxp_errors,
    read_password,
)

STEPS = ("register", "review", "approve", "reject")
MEANING = {"register": "authored", "review": "reviewed", "approve": "approved", "reject": "rejected"}


@dataclass(frozen=True)
class Target:
    object_type: str
    object_id: str
    sha256: str
    path: Path
    detail: dict[str, Any]


def _root() -> Path:
    from inspector.config.recipe import find_project_root

    return find_project_root()


def model_target(path: str | os.PathLike[str]) -> Target:
    from inspector.inference.package import ModelIntegrityError, load_package

    folder = Path(path)
    if not folder.is_absolute() and not folder.exists():
        folder = _root() / folder
    try:
        package = load_package(folder)  # verified: hash against record, ONNX metadata against record
    except ModelIntegrityError as exc:
        raise CliError(str(exc)) from None
    rec = package.record
    detail = {
        "product": rec.product.value,
        "onnx_sha256": package.sha256,
        "record_sha256": package.record_sha256,
        "thresholds": rec.thresholds.model_dump(mode="json"),
        "intended_use": rec.intended_use,
        "metrics": {k: v for k, v in rec.metrics.items() if not isinstance(v, dict | list)},
    }
    return Target("model", package.object_id, package.digest, folder, detail)


def recipe_target(name: str) -> Target:
    from inspector.config.errors import ConfigError
    from inspector.config.recipe import load_recipe

    try:
        loaded = load_recipe(name, _root())
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    r = loaded.recipe
    detail = {"product": r.product.value, "model": r.model.path, "model_sha256": r.model.sha256}
    return Target("recipe", f"{r.recipe_id}@{r.version}", loaded.sha256, loaded.path, detail)


def suite_target(path: str) -> Target:
    from inspector.config.errors import ConfigError
    from inspector.config.suite import load_suite

    p = Path(path)
    if not p.is_absolute() and not p.exists():
        p = _root() / p
    try:
        loaded = load_suite(p)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    s = loaded.suite
    detail = {"product": s.product.value, "recipe": s.recipe, "criteria": s.criteria.model_dump(mode="json")}
    return Target("suite", loaded.object_id, loaded.sha256, loaded.path, detail)


def _target(args: argparse.Namespace) -> Target:
    if args.kind == "model":
        return model_target(args.model)
    if args.kind == "suite":
        return suite_target(args.suite)
    return recipe_target(args.recipe)


def cmd_step(args: argparse.Namespace) -> int:
    from inspector.records import RecordStore
    from inspector.records.lifecycle import retire, signed_step

    target = _target(args)
    if not args.as_user:
        raise CliError("name the person signing with --as USER")
    password = read_password(args, f"password of {args.as_user} (signing {args.step} of {target.object_id}): ")
    with RecordStore(database(args)) as store:
        try:
            if args.step == "retire":
                release = retire(
                    store, username=args.as_user, password=password, object_type=target.object_type,
                    object_id=target.object_id, sha256=target.sha256, reason=args.reason,
                )  # fmt: skip
            else:
                release = signed_step(
                    store, MEANING[args.step], username=args.as_user, password=password,
                    object_type=target.object_type, object_id=target.object_id, sha256=target.sha256,
                    reason=args.reason,
                )  # fmt: skip
        except gxp_errors() as exc:
            raise CliError(str(exc)) from None
    print(
        f"{target.object_type} {target.object_id} (sha256 {target.sha256[:12]}): {release.state.value}", file=sys.stderr
    )
    return 0


def _listing(args: argparse.Namespace) -> list[dict[str, Any]]:
    from inspector.records import RecordStore
    from inspector.records.lifecycle import current
    from inspector.records.signatures import signatures, status

    root = _root()
    targets: list[Target] = []
    if args.kind == "model":
        history = 0
        for record in sorted((root / "models").glob("*/*/record.json")):
            if not (record.parent / "model.onnx").exists():
                history += 1  # a superseded version: its record stays, its model file is in git's history
                continue
            try:
                targets.append(model_target(record.parent))
            except CliError as exc:
                print(f"{record.parent}: {exc}", file=sys.stderr)
        if history:
            print(f"{history} superseded model version(s) kept as records only (no model file)", file=sys.stderr)
    else:
        folder, make = ("recipes", recipe_target) if args.kind == "recipe" else ("qualification", suite_target)
        for path in sorted((root / folder).glob("*.yaml")):
            try:
                targets.append(make(str(path)))
            except CliError as exc:
                print(f"{path}: {exc}", file=sys.stderr)
    rows = []
    with RecordStore(database(args)) as store:
        for t in targets:
            now = current(store, t.object_type, t.object_id, t.sha256)
            sigs = signatures(store, t.object_type, t.object_id)
            rows.append(
                {
                    "object": t.object_id,
                    "path": str(t.path.relative_to(root) if t.path.is_relative_to(root) else t.path),
                    "sha256": t.sha256,
                    "state": now.state.value if now else "not registered",
                    "signatures": [
                        {"signed": s.manifestation(), "status": status(s, t.sha256), "reason": s.reason} for s in sigs
                    ],
                }
            )
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    rows = _listing(args)
    if args.json is not None:
        emit_json(args, rows)
        return 0
    for r in rows:
        print(f"{r['object']:34} {r['state']:15} sha256 {r['sha256'][:12]}  {r['path']}", file=sys.stderr)
        for s in r["signatures"]:
            print(f"    {s['signed']}  [{s['status']}]  {s['reason']}", file=sys.stderr)
    return 0


# -- recipes: diff and edit --------------------------------------------------------------------------


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def recipe_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    fa, fb = _flatten(a), _flatten(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise CliError(f"{path}: not a recipe (a mapping)")
    return data


def cmd_diff(args: argparse.Namespace) -> int:
    a, b = recipe_target(args.a), recipe_target(args.b)
    changes = recipe_diff(_load_yaml(a.path), _load_yaml(b.path))
    if args.json is not None:
        emit_json(args, [{"field": k, "a": x, "b": y} for k, x, y in changes])
    else:
        print(f"{a.object_id} ({a.sha256[:12]}) -> {b.object_id} ({b.sha256[:12]})", file=sys.stderr)
        for k, x, y in changes:
            print(f"  {k}: {x!r} -> {y!r}", file=sys.stderr)
    return 0


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    keys = dotted.split(".")
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def cmd_edit(args: argparse.Namespace) -> int:
    """A new recipe version from ``--set`` changes: validated, written, audited, registered as a draft."""
    from inspector.config.loader import format_validation_error
    from inspector.config.recipe import Recipe
    from inspector.records import RecordStore, audit
    from inspector.records.lifecycle import signed_step
    from inspector.records.users import authenticate, require
    from inspector.roles import Action

    old = recipe_target(args.recipe)
    data = _load_yaml(old.path)
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise CliError(f"--set {item!r}: expected FIELD=VALUE, e.g. thresholds.anomaly=0.95")
        if key in ("version", "recipe_id", "schema_version"):
            raise CliError(f"--set {key}: the version is set by the edit itself; the id and schema stay")
        _set(data, key, yaml.safe_load(text))
    major, minor, patch = (int(x) for x in str(data["version"]).split("."))
    data["version"] = f"{major}.{minor}.{patch + 1}"
    from pydantic import ValidationError

    try:
        Recipe.model_validate(data)
    except ValidationError as exc:
        raise CliError(f"the edited recipe is not valid: {format_validation_error(exc)}") from None
    if not args.as_user:
        raise CliError("name the engineer editing with --as USER")
    password = read_password(args, f"password of {args.as_user}: ")
    old_text = old.path.read_text(encoding="utf-8")
    header = f"# {data['recipe_id']} {data['version']}: edited from {old.object_id} by {args.as_user}: {args.reason}\n"
    new_text = header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    new_sha = hashlib.sha256(new_text.encode("utf-8")).hexdigest()
    out = Path(args.out) if args.out else old.path
    with RecordStore(database(args)) as store:
        try:
            who = authenticate(store, args.as_user, password)
            require(who, Action.AUTHOR_RECIPE)
            audit.append(
                store, who, "recipe.edit", object_type="recipe", object_id=f"{data['recipe_id']}@{data['version']}",
                old={"version": old.object_id, "sha256": old.sha256, "text": old_text},
                new={"sha256": new_sha, "text": new_text, "changes": [list(c) for c in recipe_diff(
                    yaml.safe_load(old_text), data)]},
                reason=args.reason,
            )  # fmt: skip
            tmp = out.with_name(f".{out.name}.tmp")
            tmp.write_text(new_text, encoding="utf-8")
            os.replace(tmp, out)
            new = recipe_target(str(out))
            signed_step(
                store, "authored", username=args.as_user, password=password, object_type="recipe",
                object_id=new.object_id, sha256=new.sha256, reason=args.reason,
            )  # fmt: skip
        except gxp_errors() as exc:
            raise CliError(str(exc)) from None
    print(f"recipe {new.object_id} written to {out} (sha256 {new.sha256[:12]}): draft, needs review and approval",
          file=sys.stderr)  # fmt: skip
    return 0


def _register_group(sub: Subparsers, kind: str) -> None:
    plural = f"{kind}s"
    target = {"model": "--model models/vial/1.7.0", "suite": "--suite qualification/vial.yaml"}.get(
        kind, "--recipe vial"
    )
    g = add_command(
        sub,
        plural,
        help=f"{kind} release lifecycle: list, register, review, approve, reject, retire",
        example=f"inspector {plural} approve {target} --reason 'OQ passed' --as quinn",
    )
    gs = g.add_subparsers(dest=f"{plural}_command", required=True, metavar="ACTION")
    ls = add_command(
        gs,
        "list",
        help=f"every {kind} on disk with its release state and signatures",
        example=f"inspector {plural} list --json",
    )
    add_json_option(ls, "the listing")
    add_database_argument(ls)
    ls.set_defaults(func=cmd_list, kind=kind)
    helps = {
        "register": "register as a draft, signed 'authored' (engineer)",
        "review": "sign 'reviewed' (engineer or QA, not the author)",
        "approve": "sign 'approved': released for production (QA, not the author)",
        "reject": "sign 'rejected' (QA)",
        "retire": "take an approved one out of production (QA)",
    }
    for step in (*STEPS, "retire"):
        who = "erin" if step == "register" else "quinn"
        p = add_command(
            gs,
            step,
            help=helps[step],
            example=f"inspector {plural} {step} {target} --reason 'change request CR-042' --as {who}",
        )
        if kind == "model":
            p.add_argument("--model", required=True, help="package folder, e.g. models/vial/1.6.0")
        elif kind == "suite":
            p.add_argument("--suite", required=True, help="suite file, e.g. qualification/vial.yaml")
        else:
            p.add_argument("--recipe", required=True, help="recipe name (recipes/NAME.yaml) or path")
        p.add_argument("--reason", required=True, help="why (recorded with the signature)")
        add_database_argument(p)
        add_credentials(p, who="the person signing")
        p.set_defaults(func=cmd_step, kind=kind, step=step)
    if kind == "recipe":
        d = add_command(
            gs,
            "diff",
            help="field-by-field differences between two recipe files",
            example="inspector recipes diff recipes/vial.yaml /tmp/vial-new.yaml",
        )
        d.add_argument("a", help="the older recipe (name or path)")
        d.add_argument("b", help="the newer recipe (name or path)")
        add_json_option(d, "the differences")
        d.set_defaults(func=cmd_diff)
        e = add_command(
            gs,
            "edit",
            help="write a new recipe version with changed fields; registered as a draft",
            example="inspector recipes edit --recipe vial --set thresholds.anomaly=0.6 "
            "--out /tmp/vial-new.yaml --reason 'CR-042' --as erin",
        )
        e.add_argument("--recipe", required=True, help="recipe name (recipes/NAME.yaml) or path")
        e.add_argument("--set", action="append", required=True, metavar="FIELD=VALUE", help="repeat for several")
        e.add_argument("--reason", required=True, help="why (recorded with the signature)")
        e.add_argument("--out", default=None, help="where to write the new version (default: over the recipe file)")
        add_database_argument(e)
        add_credentials(e, who="the engineer editing")
        e.set_defaults(func=cmd_edit)


def register(sub: Subparsers) -> None:
    _register_group(sub, "model")
    _register_group(sub, "recipe")
    _register_group(sub, "suite")
