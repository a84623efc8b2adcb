/* Raw seccomp(2) helpers for pyruntime._seccomp. libseccomp only builds the
 * program; flags are probed and passed to the kernel directly, because
 * libseccomp 2.5.4 knows nothing of SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV and
 * the executor loads the exported program itself. */
#ifndef PYRT_SECCOMP_HELPERS_H
#define PYRT_SECCOMP_HELPERS_H

#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#ifndef SECCOMP_GET_ACTION_AVAIL
#define SECCOMP_GET_ACTION_AVAIL 2
#endif

/* 0 if the kernel accepts `flags` for SECCOMP_SET_MODE_FILTER, else the errno.
 * A NULL program makes the kernel validate the flags and then fail the copy
 * with EFAULT, so nothing is ever installed. */
static int pyrt_seccomp_flag_probe(unsigned int flags)
{
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, NULL);
    if (r == 0)
        return 0; /* cannot happen with a NULL program */
    return errno == EFAULT ? 0 : errno;
}

/* 0 if the kernel implements the SECCOMP_RET_* action, else the errno. */
static int pyrt_seccomp_action_avail(uint32_t action)
{
    if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0)
        return 0;
    return errno;
}

/* Load `len` sock_filter instructions into the calling thread. Returns the
 * listener fd (NEW_LISTENER), 0, or -errno. */
static int pyrt_seccomp_load(const char *prog, unsigned int len, unsigned int flags, int set_nnp)
{
    struct sock_fprog fprog;
    long r;

    fprog.len = (unsigned short)len;
    fprog.filter = (struct sock_filter *)prog;
    if (len == 0 || len > BPF_MAXINSNS)
        return -EINVAL;
    if (set_nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
    return r < 0 ? -errno : (int)r;
}

#endif
