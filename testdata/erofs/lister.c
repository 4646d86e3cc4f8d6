/* Lists a mounted tree as the kernel sees it, one line per entry, for
 * tests/it/erofs_kernel_mount.rs (compiled there with `gcc -static`, run in a QEMU guest):
 *   path \t st_mode(octal) \t uid \t gid \t nlink \t size \t rdev(major:minor) \t
 *   mtime_sec.mtime_nsec \t symlink target (hex, or -) \t xattrs (name=hexvalue;...,
 *   name=!errnoN where reading the value failed)
 * Paths are relative to the mount point with a leading '/'; xattr names in listxattr order. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

static size_t root_len;

static void hex(const unsigned char *p, ssize_t n) {
    for (ssize_t i = 0; i < n; i++) printf("%02x", p[i]);
}

static int visit(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)flag; (void)ftw;
    const char *rel = path + root_len;
    printf("%s\t%o\t%u\t%u\t%lu\t%lld\t%u:%u\t%lld.%09ld\t", *rel ? rel : "/", st->st_mode,
           st->st_uid, st->st_gid, (unsigned long)st->st_nlink, (long long)st->st_size,
           major(st->st_rdev), minor(st->st_rdev), (long long)st->st_mtim.tv_sec,
           st->st_mtim.tv_nsec);
    if (S_ISLNK(st->st_mode)) {
        static unsigned char target[8192];
        ssize_t n = readlink(path, (char *)target, sizeof target);
        hex(target, n < 0 ? 0 : n);
    } else {
        printf("-");
    }
    printf("\t");
    static char names[65536];
    static unsigned char value[65536];
    ssize_t len = llistxattr(path, names, sizeof names);
    for (ssize_t off = 0; len > 0 && off < len; off += strlen(names + off) + 1) {
        ssize_t n = lgetxattr(path, names + off, value, sizeof value);
        printf("%s=", names + off);
        if (n < 0)
            printf("!errno%d", errno);
        else
            hex(value, n);
        printf(";");
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    root_len = strlen(argv[1]);
    return nftw(argv[1], visit, 64, FTW_PHYS) ? 1 : 0;
}
