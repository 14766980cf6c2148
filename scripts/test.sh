#!/usr/bin/env bash
# Runs every test project of the solution (CPU; GPU tests skip with a reason when no device is present).
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet test --solution Actors.sln -c Release "$@"
