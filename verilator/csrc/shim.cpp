// The size-independent C functions of the shim (see shim.h). Every handle passed in is one
// returned by a trimac_vl_new_* function and not yet freed (the Rust side guarantees it).
#include "shim.h"

extern "C" {
void trimac_vl_free(void* h) { delete static_cast<TrimacSim*>(h); }

size_t trimac_vl_send(void* h, const uint8_t* data, size_t n, uint64_t accept_limit) {
    return static_cast<TrimacSim*>(h)->send(data, n, accept_limit);
}

size_t trimac_vl_recv(void* h, size_t n, uint64_t idle_limit) {
    return static_cast<TrimacSim*>(h)->recv(n, idle_limit);
}

size_t trimac_vl_take(void* h, uint8_t* out, size_t n) {
    return static_cast<TrimacSim*>(h)->take(out, n);
}

uint64_t trimac_vl_cycles(void* h) { return static_cast<TrimacSim*>(h)->cycles(); }

void trimac_vl_flush(void* h) { static_cast<TrimacSim*>(h)->flush(); }
}
