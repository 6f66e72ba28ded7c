/* growfs MOUNTPOINT DEVICE: grows the ext4 on DEVICE, mounted at MOUNTPOINT, to the size of
 * DEVICE, online (EXT4_IOC_RESIZE_FS: the kernel does the work). Part of the microvm guest's
 * initramfs (scripts/build-guest-kernel.sh), built static.
 *
 * Why not resize2fs: the bunker's disk is a qcow2 overlay of disk_mb over the image's ext4, so
 * nearly every cold boot grows the filesystem. Offline, that took two dd|od probes of the
 * superblock and a dynamically linked resize2fs (six shared objects in the initramfs): ~0.25 s
 * of a TCG guest's boot. Here it is one static exec and an ioctl, ~0.06 s.
 *
 * Prints one line when it grew the filesystem; exits 0 without doing anything when the
 * filesystem already fills the device (within 4 MiB), 1 on failure (the caller boots on at the
 * image's size).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#define EXT4_SUPER_MAGIC 0xEF53
#define EXT4_FEATURE_INCOMPAT_64BIT 0x80
#define SLACK_BYTES (4ULL << 20)

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: growfs MOUNTPOINT DEVICE\n");
        return 2;
    }
    const char *mnt = argv[1], *dev = argv[2];
    int fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "growfs: %s: %s\n", dev, strerror(errno));
        return 1;
    }
    uint64_t dev_bytes = 0;
    unsigned char sb[1024]; /* the primary superblock, at byte 1024 */
    if (ioctl(fd, BLKGETSIZE64, &dev_bytes) || pread(fd, sb, sizeof sb, 1024) != (ssize_t)sizeof sb) {
        fprintf(stderr, "growfs: reading %s: %s\n", dev, strerror(errno));
        close(fd);
        return 1;
    }
    close(fd);
    uint32_t log_block = le32(sb + 24);
    if ((sb[56] | sb[57] << 8) != EXT4_SUPER_MAGIC || log_block > 6) {
        fprintf(stderr, "growfs: %s holds no ext2/3/4 filesystem\n", dev);
        return 1;
    }
    uint64_t block = 1024ULL << log_block;
    uint64_t have = le32(sb + 4); /* s_blocks_count_lo */
    if (le32(sb + 0x60) & EXT4_FEATURE_INCOMPAT_64BIT) have |= (uint64_t)le32(sb + 0x150) << 32;
    uint64_t want = dev_bytes / block;
    if (want * block <= have * block + SLACK_BYTES) return 0;

    int dir = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0 || ioctl(dir, EXT4_IOC_RESIZE_FS, &want)) {
        fprintf(stderr, "growfs: growing %s to %llu blocks: %s\n", mnt, (unsigned long long)want, strerror(errno));
        return 1;
    }
    close(dir);
    printf("[init] filesystem grown from %llu MiB to %llu MiB\n", (unsigned long long)(have * block >> 20),
           (unsigned long long)(want * block >> 20));
    return 0;
}
