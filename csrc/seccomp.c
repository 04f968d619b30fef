/*
 * seccomp.c: parent side. Turns a flattened linux.seccomp (ocirun/seccomp.py does the parsing,
 * validation and the -ENOSYS prefix) into classic BPF with libseccomp.
 *
 * Runs in the runtime process, never in the container's child: the child only hands the
 * exported bytes to seccomp(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include <seccomp.h>

#include "ocirun.h"

_Static_assert(OCIRUN_SCMP_CMP_NE == SCMP_CMP_NE, "scmp_compare");
_Static_assert(OCIRUN_SCMP_CMP_LT == SCMP_CMP_LT, "scmp_compare");
_Static_assert(OCIRUN_SCMP_CMP_LE == SCMP_CMP_LE, "scmp_compare");
_Static_assert(OCIRUN_SCMP_CMP_EQ == SCMP_CMP_EQ, "scmp_compare");
_Static_assert(OCIRUN_SCMP_CMP_GE == SCMP_CMP_GE, "scmp_compare");
_Static_assert(OCIRUN_SCMP_CMP_GT == SCMP_CMP_GT, "scmp_compare");
_Static_assert(OCIRUN_SCMP_CMP_MASKED_EQ == SCMP_CMP_MASKED_EQ, "scmp_compare");

#define MAX_CONDS 6 /* a syscall has at most 6 arguments; one condition per argument */

int ocirun_seccomp_export(const struct ocirun_sc_filter *f, int out_fd, int *bad_arch,
                          int *bad_rule)
{
    struct scmp_arg_cmp cmp[MAX_CONDS];
    scmp_filter_ctx ctx;
    int i, j, rc = 0;

    *bad_arch = -1;
    *bad_rule = -1;
    ctx = seccomp_init(f->default_action);
    if (!ctx)
        return -EINVAL;

    /* We load the exported program ourselves: no_new_privs is the child's business, and
     * the SECCOMP_FILTER_FLAG_* go to seccomp(2) directly, so no other attribute matters. */
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (rc < 0)
        goto out;
    /* A binary search over the syscall numbers instead of a linear chain (long profiles).
     * Not fatal: an older libseccomp only yields a slower program. */
    if (f->optimize > 1)
        (void) seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, (uint32_t) f->optimize);

    for (i = 0; i < f->n_arches; i++) {
        rc = seccomp_arch_add(ctx, f->arches[i]);
        if (rc == -EEXIST)
            rc = 0;
        if (rc < 0) {
            *bad_arch = i;
            goto out;
        }
    }

    for (i = 0; i < f->n_rules; i++) {
        const struct ocirun_sc_rule *r = &f->rules[i];

        if (r->n_conds < 0 || r->n_conds > MAX_CONDS) {
            rc = -EINVAL;
            *bad_rule = i;
            goto out;
        }
        for (j = 0; j < r->n_conds; j++) {
            cmp[j].arg = r->conds[j].arg;
            cmp[j].op = (enum scmp_compare) r->conds[j].op;
            cmp[j].datum_a = r->conds[j].value;
            cmp[j].datum_b = r->conds[j].value_two;
        }
        /* Not _exact: libseccomp may rewrite a rule per architecture (multiplexed
         * socketcall/ipc on x86, pseudo numbers for syscalls the native arch lacks). */
        rc = seccomp_rule_add_array(ctx, r->action, r->nr, (unsigned int) r->n_conds, cmp);
        if (rc < 0) {
            *bad_rule = i;
            goto out;
        }
    }

    rc = seccomp_export_bpf(ctx, out_fd);
out:
    seccomp_release(ctx);
    return rc < 0 ? rc : 0;
}

void ocirun_seccomp_resolve_names(unsigned int arch, const char *names, int n, int *out)
{
    int i;

    for (i = 0; i < n; i++) {
        out[i] = arch ? seccomp_syscall_resolve_name_arch(arch, names)
                      : seccomp_syscall_resolve_name(names);
        names += strlen(names) + 1;
    }
}

unsigned int ocirun_seccomp_arch_resolve(const char *name)
{
    return seccomp_arch_resolve_name(name);
}

unsigned int ocirun_seccomp_arch_native(void)
{
    return seccomp_arch_native();
}

unsigned int ocirun_seccomp_api(void)
{
    return seccomp_api_get();
}

void ocirun_seccomp_version(unsigned int *v)
{
    const struct scmp_version *ver = seccomp_version();

    v[0] = ver ? ver->major : 0;
    v[1] = ver ? ver->minor : 0;
    v[2] = ver ? ver->micro : 0;
}
