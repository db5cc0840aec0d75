# Sourced by bench/run-gpu.sh and bench/run-gpu-quick.sh (from the repository root): $OUT, the run log, the phase
# banner, the machine lines, the check for the packed .gpu/, and the C# / PyTorch command arrays CS and PY.
OUT=${OUT:-$PWD/bench-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
export PYTHONUNBUFFERED=1
start=$(date +%s)
phase() { echo; echo "=== $* (t=$(( $(date +%s) - start )) s)"; }

phase "machine"
date -u +"%Y-%m-%d %H:%M:%S UTC"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
python3 -c 'import torch, platform; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))'
[[ -f .gpu/run.sh ]] || { echo "$(basename "$0"): .gpu/ is missing: pack with ../shared/gpu/pack bench/Kem.Bench/Kem.Bench.csproj and carry .gpu"; exit 1; }
CS=(bash .gpu/run.sh Kem.Bench.dll --out "$OUT")
PY=(python3 bench/twin/bench.py --out "$OUT")
