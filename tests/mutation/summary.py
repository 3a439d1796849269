"""make mutate's summary: mutants, killed and survived per module, and why each survivor lives.

    python tests/mutation/summary.py OUT.md SESSION.sqlite [SESSION.sqlite ...]

Reads cosmic-ray's session files (after ``cosmic-ray exec``). Each survivor is looked up in
``survivors.toml`` beside this file, where a person has written why it is equivalent (or what
test would kill it); one with no entry there is marked "not yet argued".
"""

from __future__ import annotations

import sqlite3
import sys
from importlib.metadata import version
from pathlib import Path

import tomllib

REASONS = Path(__file__).with_name("survivors.toml")
OTHER_OUTCOMES = {  # cosmic-ray's worker outcomes other than a test run's verdict
    "exception": "cosmic-ray could not make this mutant (an exception while mutating)",
    "timeout": "the tests ran past the .toml's timeout",
}


def jobs(session: Path) -> list[dict]:
    """One dict per mutant with a result: module, line, operator, outcome, the mutated line."""
    query = """
        select s.module_path, s.start_pos_row, s.operator_name, s.occurrence, r.test_outcome,
               r.worker_outcome, r.diff
        from mutation_specs s join work_results r on s.job_id = r.job_id
    """
    found = []
    with sqlite3.connect(session) as db:
        for module, line, operator, occurrence, test, worker, diff in db.execute(query):
            if worker.lower() == "skipped":  # left out by the operators filter of the .toml
                continue
            added = [
                d[1:].strip()
                for d in (diff or "").splitlines()
                if d.startswith("+") and not d.startswith("++")
            ]
            outcome = (test if worker.lower() == "normal" else worker).lower()  # killed, survived, timeout
            found.append({"module": module, "line": line, "operator": operator.split("/")[-1],
                          "occurrence": occurrence, "outcome": outcome,
                          "mutant": added[0] if added else ""})  # fmt: skip
    return found


def reason(job: dict, reasons: list[dict]) -> str:
    for entry in reasons:
        if (
            entry["module"] == job["module"]
            and entry["line"] == job["line"]
            and entry["operator"] == job["operator"]
        ):
            return entry["why"]
    return "**not yet argued**"


def summary(sessions: list[Path]) -> str:
    reasons = tomllib.loads(REASONS.read_text())["survivor"] if REASONS.is_file() else []
    lines = [
        "# Mutation testing (`make mutate`)",
        "",
        f"cosmic-ray {version('cosmic-ray')} changes one operator of a module at a time and runs the",
        "module's fast tests against it (the test command and the operators left out are in",
        "`tests/mutation/<module>.toml`). A mutant is killed when a test fails; one that survives is",
        "either equivalent to the code or a test still missing, said below for each.",
        "",
        "| module | mutants | killed | survived | other |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    survivors, others = [], []
    for session in sessions:
        found = jobs(session)
        killed = sum(j["outcome"] == "killed" for j in found)
        lived = [j for j in found if j["outcome"] == "survived"]
        other = [j for j in found if j["outcome"] not in ("killed", "survived")]
        survivors, others = survivors + lived, others + other
        module = found[0]["module"] if found else session.stem
        lines.append(f"| `{module}` | {len(found)} | {killed} | {len(lived)} | {len(other)} |")
    lines += ["", "Survivors, each with why it lives:", ""]
    lines += ["| module:line | operator | the mutated line | why |", "| --- | --- | --- | --- |"]
    for job in sorted(survivors, key=lambda j: (j["module"], j["line"], j["operator"])):
        mutant = job["mutant"].replace("|", "\\|")
        lines.append(
            f"| `{job['module']}:{job['line']}` | {job['operator']} | `{mutant}` | {reason(job, reasons)} |"
        )
    if others:
        lines += [
            "",
            "Other outcomes, no verdict:",
            "",
            "| module:line | operator | outcome |",
            "| --- | --- | --- |",
        ]
        for job in sorted(others, key=lambda j: (j["module"], j["line"], j["operator"])):
            outcome = OTHER_OUTCOMES.get(job["outcome"], job["outcome"])
            lines.append(f"| `{job['module']}:{job['line']}` | {job['operator']} | {outcome} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out, *sessions = sys.argv[1:]
    Path(out).write_text(summary([Path(s) for s in sessions]))
    print(Path(out).read_text())
