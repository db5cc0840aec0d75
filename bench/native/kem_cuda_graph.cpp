// CUDA graphs for Kem.Bench (TorchSharp 0.107 has no API for them), through PyTorch's own at::cuda::CUDAGraph so that
// the caching allocator keeps a private pool for the captured work, as torch.cuda.graph does in Python. The C# side
// makes a side stream current on its thread (capture needs a non-default stream), runs its warm-up and the captured
// iteration there with ordinary TorchSharp calls (the autograd engine runs the backward on the forward's stream), ends
// the capture and restores the stream; replays then launch the whole iteration as one graph. Built on the GPU machine
// against its libtorch by bench/native/build.sh (a separate library, so that a failure here leaves the statistics shim).
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <exception>
#include <string>

namespace {
thread_local std::string last_error;

struct SideStream {
  c10::cuda::CUDAStream previous;
};

template <typename F>
int guarded(F&& body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return -1;
}
}  // namespace

extern "C" {

// The message of the last failure on this thread ("" when none).
const char* kem_graph_error() { return last_error.c_str(); }

// Waits for the device, then makes a stream from PyTorch's pool current on this thread; *handle restores the previous one.
int kem_stream_enter(int device, void** handle) {
  return guarded([&] {
    auto previous = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device));
    c10::cuda::device_synchronize();
    auto side = c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(device));
    c10::cuda::setCurrentCUDAStream(side);
    *handle = new SideStream{previous};
  });
}

// Waits for the device, restores the stream that was current before kem_stream_enter and frees the handle.
int kem_stream_exit(void* handle) {
  auto* s = static_cast<SideStream*>(handle);
  int result = guarded([&] {
    c10::cuda::device_synchronize();
    c10::cuda::setCurrentCUDAStream(s->previous);
  });
  delete s;
  return result;
}

// Starts capturing the current (non-default) stream into a new graph.
int kem_graph_begin(void** graph) {
  return guarded([&] {
    auto* g = new at::cuda::CUDAGraph();
    try {
      g->capture_begin();
    } catch (...) {
      delete g;
      throw;
    }
    *graph = g;
  });
}

int kem_graph_end(void* graph) { return guarded([&] { static_cast<at::cuda::CUDAGraph*>(graph)->capture_end(); }); }

// Launches the captured work on the current stream.
int kem_graph_replay(void* graph) { return guarded([&] { static_cast<at::cuda::CUDAGraph*>(graph)->replay(); }); }

void kem_graph_free(void* graph) { delete static_cast<at::cuda::CUDAGraph*>(graph); }
}
