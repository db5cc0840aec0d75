// C entry points into PyTorch's CUDA caching allocator, for Kem.Bench (TorchSharp 0.107 exposes none of them):
// the same numbers as torch.cuda.memory_allocated / max_memory_allocated / memory_reserved / max_memory_reserved,
// reset_peak_memory_stats and empty_cache. Built on the GPU machine against its libtorch by bench/native/build.sh.
#include <c10/cuda/CUDACachingAllocator.h>
#include <cstdint>

extern "C" {

// values[0..3] = allocated now, allocated peak, reserved now, reserved peak (bytes, all pools). 0 on success.
int kem_cuda_stats(int device, int64_t* values) {
  try {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
    const auto all = 0;  // StatType::AGGREGATE
    values[0] = stats.allocated_bytes[all].current;
    values[1] = stats.allocated_bytes[all].peak;
    values[2] = stats.reserved_bytes[all].current;
    values[3] = stats.reserved_bytes[all].peak;
    return 0;
  } catch (...) {
    return -1;
  }
}

int kem_cuda_reset_peak(int device) {
  try {
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
    return 0;
  } catch (...) {
    return -1;
  }
}

int kem_cuda_empty_cache() {
  try {
    c10::cuda::CUDACachingAllocator::emptyCache();
    return 0;
  } catch (...) {
    return -1;
  }
}
}
