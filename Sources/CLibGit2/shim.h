#ifndef DAGCTL_CLIBGIT2_SHIM_H
#define DAGCTL_CLIBGIT2_SHIM_H
#include <git2.h>
#include <stdbool.h>

/* Whether `name` is a well-formed full reference name (git's check-ref-format rules). */
static inline bool git_reference_name_is_valid_shim(const char *name) {
    int valid = 0;
    return git_reference_name_is_valid(&valid, name) == 0 && valid;
}

/* The size and type of an object without reading it (git_odb_read_header needs the odb). */
static inline int git_odb_read_header_shim(size_t *size, git_object_t *type, git_repository *repo, const git_oid *id) {
    git_odb *odb = NULL;
    int error = git_repository_odb(&odb, repo);
    if (error < 0) return error;
    error = git_odb_read_header(size, type, odb, id);
    git_odb_free(odb);
    return error;
}
#endif
