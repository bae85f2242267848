#!/usr/bin/env sh
# Prints the CMAKE_ARGS used to build llama-cpp-python for this machine.
#
# LANTERN_LLAMA_CMAKE_ARGS overrides everything (e.g. "-DGGML_VULKAN=on").
# CUDA is chosen only when nvcc *and* a working NVIDIA driver are present: a CUDA
# build on a machine without a driver imports with "libcuda.so.1: cannot open".
# On x86-64 we build portable: a native build enabled AMX kernels that crashed with
# SIGSEGV in ggml_backend_amx_mul_mat on some Xeons, and a portable build also runs on
# the machine the installer is copied to.
if [ -n "${LANTERN_LLAMA_CMAKE_ARGS:-}" ]; then
  echo "$LANTERN_LLAMA_CMAKE_ARGS"; exit 0
fi
case "$(uname -s)" in
  Darwin) echo "-DGGML_METAL=on"; exit 0 ;;
esac
if command -v nvcc >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "-DGGML_CUDA=on -DGGML_NATIVE=OFF"; exit 0
fi
case "$(uname -m)" in
  x86_64|amd64) echo "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" ;;
  *) echo "-DGGML_NATIVE=OFF" ;;
esac
