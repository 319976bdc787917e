#ifndef DAGCTL_CLIBGIT2_SHIM_H
#define DAGCTL_CLIBGIT2_SHIM_H
#include <git2.h>
#endif
