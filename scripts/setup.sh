#!/usr/bin/env sh
# One-time set-up for a fresh machine: makes sure a WebGPU adapter exists. On a machine without a
# GPU driver (Debian/Ubuntu), installs Mesa's lavapipe Vulkan driver, a software WebGPU adapter.
# Deno itself comes from npm (`npx -y deno@2.9.6 ...`); the npm packages of the index (LanceDB,
# Arrow, parquet-wasm, pinned) are fetched into Deno's cache.
# With --bench, also installs what `deno task bench` compares against on the CPU: PyTorch
# (Debian's python3-torch, with OpenBLAS; without libopenblas0-pthread torch falls back to the
# reference BLAS, ~20x slower) and numpy. Tests need none of it.
set -u
DENO="npx -y deno@2.9.6"
if [ "${1:-}" = "--bench" ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing the CPU baselines of deno task bench (python3-torch, OpenBLAS, numpy)"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-torch python3-numpy \
    libopenblas0-pthread >/dev/null || echo "setup: could not install the benchmark baselines"
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
# The index's pinned npm packages (LanceDB 0.31.0 with its native linux-x64 binary, Apache Arrow
# 18.1.0, parquet-wasm 0.8.0), fetched now rather than on first use; nothing else imports them.
# A failure is reported with its reason and does not stop the set-up: only `deno task index`,
# `eval --index` and their tests need these packages.
if ! fetched=$(cd "$(dirname "$0")/.." && $DENO cache --no-check=remote src/index/lance.ts \
  src/index/parquet.ts 2>&1); then
  echo "setup: could not fetch the index packages (LanceDB, Arrow, parquet-wasm); deno task index" \
    "and its tests will fail until they are. deno cache said:" >&2
  printf '%s\n' "$fetched" | tail -n 5 >&2
fi
probe='const a = await navigator.gpu?.requestAdapter(); if (!a) Deno.exit(1); console.log(a.info?.description || a.info?.vendor || "adapter");'
if adapter=$($DENO eval "$probe" 2>/dev/null) && [ -n "$adapter" ]; then
  echo "setup: WebGPU adapter found: $adapter"
  # Prefer Vulkan's lavapipe over GL's llvmpipe on CPU-only Debian: it grants shader-f16.
  if command -v apt-get >/dev/null 2>&1 && ! dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 \
    && echo "$adapter" | grep -qi llvmpipe; then
    (apt-get update -qq && apt-get install -y -qq mesa-vulkan-drivers >/dev/null) ||
      echo "setup: could not install mesa-vulkan-drivers; keeping the GL adapter"
  fi
  exit 0
fi
echo "setup: no WebGPU adapter; installing Mesa's software Vulkan driver (mesa-vulkan-drivers)"
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
else
  echo "setup: install a Vulkan driver for your GPU, or Mesa's lavapipe, then rerun" >&2
  exit 1
fi
if adapter=$($DENO eval "$probe" 2>/dev/null) && [ -n "$adapter" ]; then
  echo "setup: WebGPU adapter found: $adapter"
else
  echo "setup: still no WebGPU adapter after installing mesa-vulkan-drivers" >&2
  exit 1
fi
