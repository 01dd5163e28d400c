"""The run folder before a run starts: what the flags allow (``--resume``, ``--overwrite``), a
new plan or the manifest to continue, and the check of every file a resumed run keeps.

See :mod:`progression.storage` for the layout, :mod:`progression.manifest` for the record and
:mod:`progression.lock` for ownership; the run takes the folder (:func:`check_folder`, then the
lock) before :func:`prepare` changes anything in it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from progression import lock, storage
from progression.chunking import plan_chunks
from progression.manifest import Manifest, enclosing_run, is_run_manifest


class RunError(Exception):
    """A run cannot start or go on; the message is one line, fit for the terminal."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_version() -> str:
    import progression

    return str(getattr(progression, "__version__", "unknown"))


def new_manifest(scenario: Any, chunk_size: int, prefixes: tuple[str, ...]) -> Manifest:
    """The plan: the chunks of each part in turn (one part, prefix ``""``, in a plain run)."""
    chunks = plan_chunks(scenario.cohort.patients, chunk_size)
    return Manifest(
        scenario_hash=scenario.hash,
        version=package_version(),
        scenario_path=str(scenario.path),
        patients=int(scenario.cohort.patients) * len(prefixes),
        seed=int(scenario.cohort.seed),
        arms=list(scenario.arm_names),
        chunk_size=chunk_size,
        chunks=[[r.start, r.stop] for _ in prefixes for r in chunks],
        started=utc_now(),
        prefixes=[] if prefixes == ("",) else [p for p in prefixes for _ in chunks],
    )


def check_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse what no flag allows, before this run takes the folder (so nothing of ours is left
    in a folder that is not a run): a file, a folder inside a run, a non-empty folder without
    a flag or that is not a run, and (``overwrite``) a run holding entries it did not write."""
    if resume and overwrite:
        raise RunError("choose one of --resume and --overwrite, not both")
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} exists and is not a folder")
    outer = enclosing_run(out)
    if outer is not None:
        raise RunError(
            f"{out} is inside the run {outer}: a run there would make it unreadable; choose an "
            "--out outside it"
        )
    if storage.is_empty_dir(out, ignore=(lock.LOCK, storage.TMP_DIR)):
        return
    if not (resume or overwrite):
        raise RunError(
            f"{out} is not empty: add --resume to continue the run in it "
            "or --overwrite to replace it"
        )
    if not is_run_manifest(out / storage.MANIFEST):
        raise RunError(
            f"{out} is not empty and holds no progression {storage.MANIFEST}, so it is not a "
            "progression run; refusing to resume or overwrite it (choose another --out)"
        )
    foreign = storage.foreign_entries(out) if overwrite else []
    if foreign:
        raise RunError(
            f"{out} holds {foreign[0].relative_to(out)}"
            + (f" and {len(foreign) - 1} more entries" if len(foreign) > 1 else "")
            + " that progression did not write; refusing to overwrite it (move them away or "
            "choose another --out)"
        )


def prepare(
    scenario: Any,
    out: Path,
    chunk_size: int | None,
    choose_size: Callable[[], int],
    resume: bool,
    overwrite: bool,
    prefixes: tuple[str, ...] = ("",),
) -> tuple[Manifest, dict[int, str]]:
    """Prepare the folder this run owns; return the manifest to continue (saved on disk) and
    the complete chunks found damaged (``{chunk: problem}``, to be redone).

    ``choose_size()`` gives the chunk size of a new run when ``chunk_size`` is None.
    """
    has_manifest = (out / storage.MANIFEST).is_file()
    if overwrite and has_manifest:
        if storage.foreign_entries(out):  # appeared since the check: still the user's
            raise RunError(f"{out} changed while starting; nothing was deleted, try again")
        storage.clear_run(out)
        has_manifest = False
    if resume and has_manifest:
        try:
            manifest = Manifest.load(out)
        except ValueError as e:
            raise RunError(f"cannot resume: {e}; use --overwrite to start again") from e
        if manifest.scenario_hash != scenario.hash:
            raise RunError(
                f"cannot resume {out}: its scenario (sha256 {manifest.scenario_hash[:12]}) differs "
                f"from this one ({scenario.hash[:12]}); use --overwrite to start again"
            )
        if manifest.version != package_version():
            raise RunError(
                f"cannot resume {out}: written by progression {manifest.version}, this is "
                f"{package_version()}; use --overwrite to start again"
            )
        if chunk_size is not None and chunk_size != manifest.chunk_size:
            raise RunError(
                f"cannot resume {out} with chunk size {chunk_size}: it was planned with "
                f"{manifest.chunk_size} (leave --chunk-size out)"
            )
        damaged = manifest.damaged(out)
        for k in damaged:
            manifest.forget(k)
        storage.remove_incomplete(out, manifest.completed_chunks())
        if not (out / storage.SCENARIO_COPY).is_file():  # deleted by hand: the run's own text
            storage.write_text_atomic(out / storage.SCENARIO_COPY, scenario.text)
        manifest.save(out)
        return manifest, damaged
    try:
        manifest = new_manifest(scenario, chunk_size or choose_size(), prefixes)
    except ValueError as e:  # too many chunks
        raise RunError(str(e)) from None
    storage.write_text_atomic(out / storage.SCENARIO_COPY, scenario.text)
    manifest.save(out)
    return manifest, {}
