#!/usr/bin/env bash
# Regenerates the committed Python code for proto/ihx/v1/*.proto with the pinned grpcio-tools
# and mypy-protobuf from the dev extra. CI runs this and fails on any diff.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc \
  -I proto \
  --python_out=proto \
  --grpc_python_out=proto \
  --mypy_out=proto \
  --mypy_grpc_out=proto \
  proto/ihx/v1/*.proto
