#!/bin/sh
# make demo: a self-contained fine-tune (no ../shared, no internet).
set -e
BUILD=${1:-build}
"$BUILD"/lorafit --version
