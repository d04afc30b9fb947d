/* test_resume_synth.c - writes the small synthetic IDX data set of
 * tests/synth.h for the shell tests (test_resume.sh, test_slurm.sh):
 *   test_resume_synth DIR NTRAIN NTEST SIDE
 * gives DIR/{train,test}-{images,labels}.idx in 4 classes. */
#include <stdio.h>
#include <stdlib.h>

#include "synth.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s DIR NTRAIN NTEST SIDE\n", argv[0]);
        return 2;
    }
    const int ntrain = atoi(argv[2]), ntest = atoi(argv[3]), side = atoi(argv[4]);
    if (ntrain < 1 || ntest < 1 || side < 2 || side > 256) {
        fprintf(stderr, "%s: NTRAIN, NTEST >= 1 and SIDE in 2..256\n", argv[0]);
        return 2;
    }
    if (synth_write(argv[1], "train", ntrain, side, 4, 1) ||
        synth_write(argv[1], "test", ntest, side, 4, 2)) {
        fprintf(stderr, "%s: cannot write the data set in %s\n", argv[0], argv[1]);
        return 1;
    }
    return 0;
}
