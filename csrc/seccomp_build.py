"""cffi builder for pyruntime._seccomp: a thin binding of libseccomp (API mode).

Kept separate from the executor module so that only commands which actually
compile a filter pay for loading libseccomp.

Build alone (writes pyruntime/_seccomp*.so):  python3 csrc/seccomp_build.py
"""
import os

from cffi import FFI

ffibuilder = FFI()

ffibuilder.cdef(
    """
    typedef void *scmp_filter_ctx;

    struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };

    enum scmp_filter_attr {
        SCMP_FLTATR_ACT_DEFAULT, SCMP_FLTATR_ACT_BADARCH, SCMP_FLTATR_CTL_NNP,
        SCMP_FLTATR_CTL_TSYNC, SCMP_FLTATR_API_TSKIP, SCMP_FLTATR_CTL_LOG,
        SCMP_FLTATR_CTL_SSB, SCMP_FLTATR_CTL_OPTIMIZE, SCMP_FLTATR_API_SYSRAWRC,
        ...
    };

    enum scmp_compare {
        SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE,
        SCMP_CMP_GT, SCMP_CMP_MASKED_EQ, ...
    };

    typedef uint64_t scmp_datum_t;

    struct scmp_arg_cmp {
        unsigned int arg;
        enum scmp_compare op;
        scmp_datum_t datum_a;
        scmp_datum_t datum_b;
    };

    #define __NR_SCMP_ERROR ...

    const struct scmp_version *seccomp_version(void);
    unsigned int seccomp_api_get(void);
    scmp_filter_ctx seccomp_init(uint32_t def_action);
    void seccomp_release(scmp_filter_ctx ctx);
    uint32_t seccomp_arch_resolve_name(const char *arch_name);
    uint32_t seccomp_arch_native(void);
    int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
    int seccomp_arch_exist(const scmp_filter_ctx ctx, uint32_t arch_token);
    int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
    int seccomp_syscall_resolve_name(const char *name);
    int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
    int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                               unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
    int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);

    /* raw kernel helpers (csrc/seccomp_helpers.h) */
    int pyrt_seccomp_flag_probe(unsigned int flags);
    int pyrt_seccomp_action_avail(uint32_t action);
    int pyrt_seccomp_load(const char *prog, unsigned int len, unsigned int flags, int set_nnp);
    """
)

_here = os.path.dirname(os.path.abspath(__file__))

ffibuilder.set_source(
    "pyruntime._seccomp",
    '#include "seccomp_helpers.h"\n',
    include_dirs=[_here],
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    import glob
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        built = ffibuilder.compile(tmpdir=tmp)
        pkg = os.path.join(os.path.dirname(_here), "pyruntime")
        # A stale module under another suffix (abi3 from setup.py) could shadow this one.
        for old in glob.glob(os.path.join(pkg, "_seccomp.*.so")):
            os.unlink(old)
        dest = os.path.join(pkg, os.path.basename(built))
        shutil.copyfile(built, dest + ".tmp")
        os.replace(dest + ".tmp", dest)
        print(dest)
