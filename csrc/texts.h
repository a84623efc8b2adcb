/* The C library's wording of errnos and signals, as runc's messages have them (glibc's).
 * A program built with musl (csrc/muslcc.py) takes them from the generated pyrt_texts.h:
 * musl words some differently ("Symbolic link loop" for ELOOP). */
#ifndef PYRT_TEXTS_H
#define PYRT_TEXTS_H
#include <stdio.h>
#include <string.h>

#ifdef PYRT_TEXTS
#include "pyrt_texts.h"
static __attribute__((unused)) const char *err_text(int e)
{
    static char b[32];
    if (e >= 0 && e < (int)(sizeof pyrt_errtab / sizeof *pyrt_errtab))
        return pyrt_errtab[e];
    snprintf(b, sizeof b, "Unknown error %d", e);
    return b;
}

static __attribute__((unused)) const char *sig_text(int s)
{
    static char b[32];
    if (s > 0 && s < (int)(sizeof pyrt_sigtab / sizeof *pyrt_sigtab) && pyrt_sigtab[s][0])
        return pyrt_sigtab[s];
    snprintf(b, sizeof b, "Unknown signal %d", s);
    return b;
}
#else
#define err_text strerror
#define sig_text strsignal
#endif
#endif
