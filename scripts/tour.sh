#!/usr/bin/env bash
# Runs the README's tour as written: every ```sh tour block, in order, in one bash (set -euo pipefail), from the
# clone's root, with the fake ComfyUI on 127.0.0.1:8188 standing in for a real one. Then checks what the tour
# says it leaves behind (the downloaded outputs) and removes what it created. CI runs it (.ci/run).
#
# It needs the README's ports (8080, 8081, 8188) free and no ./switchyard-data: the tour is for a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
for port in 8080 8081 8188; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "tour: port $port is in use; the tour needs it" >&2; exit 1; fi
done
created=(switchyard-data serve.log agent.log outputs inverted.png photo.png)
for path in "${created[@]}"; do
  if [ -e "$path" ]; then echo "tour: ./$path exists; the tour starts from a fresh clone (move it away)" >&2; exit 1; fi
done

swift build --product switchyard-fake-comfyui >/dev/null
"$(swift build --show-bin-path)/switchyard-fake-comfyui" 8188 >/tmp/tour-comfyui.log 2>&1 &
fake=$!
script=$(mktemp)
cleanup() {
  kill "$fake" 2>/dev/null || true
  rm -f "$script"
  rm -rf "${created[@]}"
}
trap cleanup EXIT

{
  echo 'set -euo pipefail'
  # The tour starts serve and the agent in the background; they stop with it.
  echo "trap 'kill \$(jobs -p) 2>/dev/null || true' EXIT"
  awk '/^```sh tour$/ { inside = 1; print "echo \"== README block " ++n "\""; next } /^```$/ { inside = 0; next } inside { print }' README.md
} >"$script"
blocks=$(grep -c '^```sh tour$' README.md)
echo "tour: $blocks blocks from README.md"
if ! timeout 600 bash "$script"; then
  echo "tour: a README block failed; the server's and the agent's logs:" >&2
  tail -n 30 serve.log agent.log >&2 || true
  exit 1
fi

# What the tour says it produces.
ls outputs/invert_*.png >/dev/null
[ "$(ls outputs/*.png | wc -l)" -ge 2 ]
[ -s inverted.png ]
echo "tour: every README block ran; outputs downloaded: $(ls outputs | tr '\n' ' ')"
