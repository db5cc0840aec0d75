#!/usr/bin/env bash
# Builds a shim against the libtorch of this machine's python3 torch: libkemcudastats.so (bench/native/kem_cuda_stats.cpp,
# the allocator statistics) or libkemcudagraph.so (kem_cuda_graph.cpp, CUDA graphs).
# Usage: bash bench/native/build.sh OUTDIR [stats|graph]   → OUTDIR/lib….so; a non-zero exit (with the compiler's words) on failure.
set -uo pipefail
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
read -r torch_dir abi < <(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__), int(torch._C._GLIBCXX_USE_CXX11_ABI))')
includes=(-I"$torch_dir/include" -I"$torch_dir/include/torch/csrc/api/include")
# CUDA runtime headers: the toolkit next to nvcc, or the pip nvidia packages beside torch.
for d in "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")/../include" /usr/local/cuda/include \
         $(python3 -c 'import os, nvidia; p=os.path.dirname(nvidia.__file__); print(" ".join(os.path.join(r) for r, ds, fs in os.walk(p) if "cuda_runtime_api.h" in fs))' 2>/dev/null); do
  [[ -f $d/cuda_runtime_api.h ]] && { includes+=(-I"$d"); break; }
done
cxx=$(command -v g++ || command -v c++ || command -v clang++)
[[ -n $cxx ]] || { echo "build.sh: no C++ compiler"; exit 1; }
flags=(-O2 -std=c++17 -shared -fPIC -D_GLIBCXX_USE_CXX11_ABI="$abi" "${includes[@]}" -L"$torch_dir/lib" -Wl,-rpath,"$torch_dir/lib")
case ${2:-stats} in
  stats) "$cxx" "${flags[@]}" "$here/kem_cuda_stats.cpp" -lc10_cuda -lc10 -o "$out/libkemcudastats.so" ;;
  # CUDA graphs (ModuleBench --graphs): at::cuda::CUDAGraph lives in libtorch_cuda
  graph) "$cxx" "${flags[@]}" "$here/kem_cuda_graph.cpp" -ltorch_cuda -ltorch_cpu -lc10_cuda -lc10 -o "$out/libkemcudagraph.so" ;;
  *) echo "build.sh: unknown library '$2' (stats or graph)"; exit 1 ;;
esac
