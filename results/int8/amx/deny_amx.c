/* LD_PRELOAD shim: refuse Linux's AMX tile permission (arch_prctl ARCH_REQ_XCOMP_PERM via
 * syscall()), so a library that asks first (ONNX Runtime's MLAS) falls back to its non-AMX
 * kernels. Build: gcc -shared -fPIC -O2 -o deny_amx.so deny_amx.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>

long syscall(long n, ...) {
    va_list ap;
    va_start(ap, n);
    long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
    long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
    va_end(ap);
    if (n == 158 && a == 0x1023) {
        errno = EPERM;
        return -1;
    }
    long (*real)(long, ...) = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(n, a, b, c, d, e, f);
}
