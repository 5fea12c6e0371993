// The C ABI between trimac-verilator (Rust) and one verilated top-level.
//
// The whole per-cycle loop runs here, in C++: Rust hands over a burst of input bytes (send) or
// asks for a number of output bytes (recv) and gets the result back in one call, so no port
// bit crosses the FFI per cycle.
//
// Per-cycle semantics are exactly those of the rust-hdl backend (sim/src/rtl.rs, RtlDevice):
// each cycle the host presents at most one input byte (in_valid) and is always ready for an
// output byte (out_ready = 1); with the clock low the inputs are applied and the design
// settles, then the handshakes are sampled (input taken when in_valid && in_ready, an output
// byte received when out_valid), then the clock rises. Construction runs one cycle with reset
// asserted. Hence the cycle counts of the two backends are identical for the same traffic.
//
// Waveforms: timestamps 20 * cycle (clock low, settled) and 20 * cycle + 10 (after the rising
// edge), as RtlDevice writes its VCD.
//
// Single eval (TRIMAC_ONE_EVAL = 1, untraced models only; the build defines it in the model's
// file when the generated root class keeps trigger state for `posedge clock` alone, see
// single_eval_ok in src/flags.rs): a cycle whose inputs (in_valid, in_data, reset, out_ready)
// equal those of the previous eval skips the clock-low eval. That eval would change nothing:
// the previous (rising-edge) eval left the model settled with these inputs and the current
// registers, the falling edge triggers nothing, and the clock has no use but the edge
// trigger; its one effect, the trigger's record of the previous clock level, is written
// directly (__Vtrigprevexpr___TOP__clock__0 = 0) so that the next eval sees the rising edge.
// The handshakes are then sampled from the settled outputs, as in the two-eval path. The
// first cycle after construction and every cycle whose inputs changed take two evals.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "verilated.h"
#ifndef TRIMAC_ONE_EVAL
#define TRIMAC_ONE_EVAL 0
#endif
#if TRIMAC_ONE_EVAL && defined(TRIMAC_TRACE) && TRIMAC_TRACE
#error "TRIMAC_ONE_EVAL is for untraced models (waveforms need the clock-low eval)"
#endif
#if TRIMAC_TRACE == 1
#include "verilated_vcd_c.h"
typedef VerilatedVcdC TrimacTraceFile;
#elif TRIMAC_TRACE == 2
#include "verilated_fst_c.h"
typedef VerilatedFstC TrimacTraceFile;
#endif

// The interface every model instance offers to the common C functions (shim.cpp).
class TrimacSim {
  public:
    virtual ~TrimacSim() {}
    // Presents bytes one after another; returns how many were taken (n unless one of them
    // waited more than accept_limit cycles).
    size_t send(const uint8_t* data, size_t n, uint64_t accept_limit) {
        for (size_t i = 0; i < n; i++) {
            uint64_t waited = 0;
            while (!step(true, data[i])) {
                waited++;
                if (waited > accept_limit) return i;
            }
        }
        return n;
    }
    // Steps with no input until `n` output bytes are queued or no byte arrived for more than
    // idle_limit cycles; returns the number queued.
    size_t recv(size_t n, uint64_t idle_limit) {
        uint64_t idle = 0;
        while (queued() < n) {
            size_t before = queued();
            step(false, 0);
            if (queued() > before) {
                idle = 0;
            } else {
                idle++;
                if (idle > idle_limit) break;
            }
        }
        return queued();
    }
    // Moves up to n queued output bytes to out; returns how many.
    size_t take(uint8_t* out, size_t n) {
        size_t k = queued() < n ? queued() : n;
        for (size_t i = 0; i < k; i++) out[i] = rx[head + i];
        head += k;
        if (head == rx.size()) {
            rx.clear();
            head = 0;
        }
        return k;
    }
    uint64_t cycles() const { return cycle_count; }
    virtual void flush() = 0;

  protected:
    virtual bool step(bool valid, uint8_t byte) = 0;
    size_t queued() const { return rx.size() - head; }
    std::vector<uint8_t> rx;
    size_t head = 0;
    uint64_t cycle_count = 0;
};

template <class M>
class TrimacModel final : public TrimacSim {
  public:
    // trace_path: waveform file, or nullptr (only honoured by traced builds).
    explicit TrimacModel(const char* trace_path) : ctx(new VerilatedContext), m(nullptr) {
        ctx->randReset(0);
#if TRIMAC_TRACE
        if (trace_path) ctx->traceEverOn(true);
#endif
        m.reset(new M(ctx.get(), "top"));
#if TRIMAC_TRACE
        if (trace_path) {
            tfp.reset(new TrimacTraceFile);
            m->trace(tfp.get(), 99);
            tfp->open(trace_path);
        }
#else
        (void)trace_path;
#endif
        reset_in = 1;
        step(false, 0);
        reset_in = 0;
    }
    ~TrimacModel() override {
#if TRIMAC_TRACE
        if (tfp) tfp->close();
#endif
        m->final();
    }
    void flush() override {
#if TRIMAC_TRACE
        if (tfp) tfp->flush();
#endif
    }
    bool ok() const {
#if TRIMAC_TRACE
        return !tfp || tfp->isOpen();
#else
        return true;
#endif
    }

  protected:
    bool step(bool valid, uint8_t byte) override {
        M* t = m.get();
#if TRIMAC_ONE_EVAL
        if (settled && valid == last_valid && byte == last_data && reset_in == last_reset) {
            bool taken = valid && t->in_ready;
            if (t->out_valid) rx.push_back(t->out_data);
            t->rootp->__Vtrigprevexpr___TOP__clock__0 = 0;
            t->clock = 1;
            t->eval();
            cycle_count++;
            return taken;
        }
        settled = true;
        last_valid = valid;
        last_data = byte;
        last_reset = reset_in;
#endif
        t->reset = reset_in;
        t->in_valid = valid;
        t->in_data = byte;
        t->out_ready = 1;
        t->clock = 0;
        t->eval();
        bool taken = valid && t->in_ready;
        if (t->out_valid) rx.push_back(t->out_data);
#if TRIMAC_TRACE
        if (tfp) tfp->dump(20 * cycle_count);
#endif
        t->clock = 1;
        t->eval();
#if TRIMAC_TRACE
        if (tfp) tfp->dump(20 * cycle_count + 10);
#endif
        cycle_count++;
        return taken;
    }

  private:
    // The level the shim drives on `reset` (1 during the constructor's cycle).
    uint8_t reset_in = 0;
#if TRIMAC_ONE_EVAL
    // The inputs of the last eval (out_ready is always 1), valid once `settled`.
    bool settled = false;
    bool last_valid = false;
    uint8_t last_data = 0;
    uint8_t last_reset = 0;
#endif
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<M> m;
#if TRIMAC_TRACE
    std::unique_ptr<TrimacTraceFile> tfp;
#endif
};

// Defines the constructor of one model: `void* trimac_vl_new_<NAME>(const char* trace_path)`,
// returning nullptr when the model cannot be built (a waveform file that cannot be opened).
#define TRIMAC_DEFINE_MODEL(NAME, CLASS)                                        \
    extern "C" void* trimac_vl_new_##NAME(const char* trace_path) {            \
        try {                                                                   \
            TrimacModel<CLASS>* s = new TrimacModel<CLASS>(trace_path);         \
            if (!s->ok()) {                                                     \
                delete s;                                                       \
                return nullptr;                                                 \
            }                                                                   \
            return static_cast<TrimacSim*>(s);                                  \
        } catch (...) {                                                         \
            return nullptr;                                                     \
        }                                                                       \
    }
