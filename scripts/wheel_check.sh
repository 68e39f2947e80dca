#!/usr/bin/env bash
# Build nst's wheel, install it (not editable) into a fresh venv and use it from outside the
# repository: `nst --help`, `nst mode=models` and one tiny stylize with a shipped model. Catches a
# wheel without its configs or assets, which an editable install hides.
# The fresh venv borrows torch & co. from the project venv (a .pth line, no copy, no network);
# the project venv's editable nst is not seen there (.pth files of a borrowed folder are not run).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh" >&2
py="$here/${NST_VENV:-.venv}/bin/python"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Build from a copy of the tree (tracked and new files, not ignored ones): setuptools leaves build/
# and *.egg-info beside the sources it builds.
mkdir "$work/src"
(cd "$here" && git ls-files -co --exclude-standard -z | xargs -0 tar -c) | tar -x -C "$work/src"
(cd "$work/src" && "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" . 2>/dev/null)
wheel="$(ls "$work"/dist/nst-*.whl)"
"$py" -m venv "$work/venv"
site="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$py" -c 'import site; print(site.getsitepackages()[0])' > "$site/borrowed-project-venv.pth"
"$work/venv/bin/python" -m pip install -q --no-deps --no-index "$wheel"
cd "$work"  # nowhere near the repository's configs/ and assets
"$work/venv/bin/python" - <<'EOF'
import nst, nst.cli
assert "site-packages" in nst.__file__, f"imported the checkout, not the wheel: {nst.__file__}"
print("wheel nst:", nst.__file__, "configs:", nst.cli.config_dir())
EOF
help="$("$work/venv/bin/nst" --help)"; grep -q "mode:" <<< "$help"
models="$("$work/venv/bin/nst" mode=models)"; grep -q starry_night <<< "$models"
"$work/venv/bin/python" -c "import torch; from nst.io.image import save_image; save_image(torch.rand(1, 3, 40, 56), 'in.png')"
"$work/venv/bin/nst" mode=stylize checkpoint=starry_night input=in.png output=out/in_starry.png
test -s out/in_starry.png
test ! -e outputs  # an explicit output= leaves no Hydra run folder behind
# the web page from the wheel: its static files are package data
"$work/venv/bin/python" - <<'EOF'
import socket, subprocess, sys, time, urllib.request
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen([sys.executable, "-m", "nst", "mode=serve", f"port={port}"])
try:
    for _ in range(600):
        try:
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
            break
        except OSError:
            time.sleep(0.2)
    else:
        raise SystemExit("wheel check: nst mode=serve did not answer")
    script = urllib.request.urlopen(f"http://127.0.0.1:{port}/static/app.js", timeout=5).read().decode()
    models = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/models", timeout=5).read().decode()
    assert "app.js" in page and "/api/stylize" in script and "starry_night" in models
    print("wheel nst mode=serve: page, script and model list served")
finally:
    server.terminate()
    server.wait(timeout=30)
EOF
echo "wheel check: ok ($(basename "$wheel"))"
