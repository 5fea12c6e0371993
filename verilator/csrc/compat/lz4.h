// Fallback declarations of the two LZ4 functions Verilator's FST writer (fstcpp) calls, for
// machines that have the LZ4 runtime library (liblz4.so.1, present on Debian by default) but
// not its development headers (liblz4-dev). Searched after the system include directories
// (-idirafter), so a real lz4.h wins. These signatures are LZ4's stable public ABI.
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
