#!/usr/bin/env bash
# Regenerates Tests/Fixtures/sigv4/botocore-presign.json: presigned URLs, canonical requests and strings to
# sign from botocore (../shared/tools/sigv4-presign-reference.py, frozen clock) for keys with spaces,
# unicode and reserved characters. The Swift signer must reproduce each byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
reference=${SIGV4_REFERENCE:-../shared/tools/sigv4-presign-reference.py}
python3 - "$reference" >Tests/Fixtures/sigv4/botocore-presign.json <<'PY'
import json, subprocess, sys
reference = sys.argv[1]
cases = [
    ["--key", "teams/t1/files/report 2024.bin"],
    ["--key", "a b/ü.txt", "--content-length", "5", "--time", "20250101T000000Z"],
    ["--key", "inputs/x/y/aW1hZ2UvcG5n/photo (1).png", "--content-type", "image/png", "--content-length", "1048576"],
    ["--key", "reserved/!*'()+,;=:@$&?#[]%~_-.txt", "--content-length", "3"],
    ["--key", "日本語/ファイル名.png", "--method", "GET", "--no-if-none-match", "--no-content-length"],
    ["--key", "plain.txt", "--method", "GET", "--expires", "604800", "--region", "eu-central-1", "--bucket", "other-bucket"],
    ["--key", "emoji/😀 smile.txt", "--no-if-none-match", "--content-length", "0", "--endpoint", "https://s3.example.com:8443"],
    ["--key", "slashes//double/./dot/../x", "--method", "GET", "--no-if-none-match", "--no-content-length"],
    ["--key", "tilde~and%percent", "--access-key", "SYEXAMPLEKEY0000", "--secret-key", "s3cr3t/with+plus=and/slash",
     "--time", "20261122T235959Z", "--expires", "1"],
]
out = []
for args in cases:
    result = json.loads(subprocess.check_output([sys.executable, reference, *args]))
    result["arguments"] = args
    out.append(result)
json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
print()
PY
echo "wrote Tests/Fixtures/sigv4/botocore-presign.json"
