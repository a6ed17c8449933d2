"""docs/multihost.md shows each multi-host preset's files on every host exactly as
``qwenctl init`` writes them (with documentation addresses), so the page cannot drift
from what ships. Regenerate the section after changing a preset:

    .venv/bin/python -m tests.config.test_multihost_docs
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from qwend.config.load import check_cluster
from qwend.config.presets import ClusterPreset, install_cluster_preset, list_cluster_presets
from tests.support.paths import REPO

DOC = REPO / "docs" / "multihost.md"
BEGIN = "<!-- generated from the presets: python -m tests.config.test_multihost_docs -->"
END = "<!-- end of generated section -->"
NIC = "eth0"


def doc_values(preset: ClusterPreset) -> dict[str, str]:
    """Documentation addresses (RFC 5737, 192.0.2.0/24) and one NIC name for every host."""
    values = {f"nic:{host}": NIC for host in preset.hosts}
    values |= {f"address:{h}": f"192.0.2.{i + 1}" for i, h in enumerate(preset.hosts)}
    return values


def _command(preset: ClusterPreset, values: dict[str, str]) -> str:
    addresses = " ".join(f"--address {h}={values[f'address:{h}']}" for h in preset.hosts)
    return f"qwenctl init --preset {preset.name} --dir cluster/ {addresses} --nic {NIC}"


def section(root: Path) -> str:
    """The generated part of multihost.md (presets written under ``root``)."""
    parts = [BEGIN, ""]
    for preset in list_cluster_presets():
        values = doc_values(preset)
        install_cluster_preset(preset, values, root / preset.name)
        dirs = [root / preset.name / host for host in preset.hosts]
        assert check_cluster(dirs).ok, preset.name
        parts += [f"### `{preset.name}`", "", preset.summary, "", "```sh"]
        parts += [_command(preset, values), "```", ""]
        for host, directory in zip(preset.hosts, dirs, strict=True):
            address = values[f"address:{host}"]
            parts += [
                f"<details><summary>{host} ({address}): /etc/qwend on {host}</summary>",
                "",
            ]
            for relative in preset.files(host):
                text = (directory / relative).read_text(encoding="utf-8").rstrip("\n")
                parts += [f"`{relative}`", "", "```toml", text, "```", ""]
            parts += ["</details>", ""]
    parts.append(END)
    return "\n".join(parts)


def _current() -> str:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def test_multihost_doc_shows_every_hosts_files_of_each_preset(tmp_path: Path) -> None:
    expected = section(tmp_path)
    assert _current() == expected, (
        "docs/multihost.md is out of date: python -m tests.config.test_multihost_docs"
    )


def test_the_generated_section_can_go_stale(tmp_path: Path) -> None:
    """The comparison sees a changed preset value (the check is not vacuous)."""
    current = _current()
    assert "--data-parallel-address" in current and "192.0.2.1" in current
    assert current.replace("13389", "13390") != section(tmp_path)


def _write() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    with tempfile.TemporaryDirectory() as root:
        DOC.write_text(text[:start] + section(Path(root)) + text[end:], encoding="utf-8")


if __name__ == "__main__":
    _write()
