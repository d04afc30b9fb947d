/* mpicnn.h - umbrella header: every public module of mpicnn, in the
 * dependency order of src/ (lowest first). */
#ifndef MPICNN_H
#define MPICNN_H

#include "mpicnn/status.h"
#include "mpicnn/csv.h"
#include "mpicnn/fs.h"
#include "mpicnn/rng.h"
#include "mpicnn/str.h"
#include "mpicnn/kernels.h"
#include "mpicnn/layer.h"
#include "mpicnn/loss.h"
#include "mpicnn/net.h"
#include "mpicnn/optim.h"
#include "mpicnn/config.h"
#include "mpicnn/data.h"
#include "mpicnn/dataprep.h"
#include "mpicnn/dist.h"
#include "mpicnn/watchdog.h"
#include "mpicnn/fault.h"
#include "mpicnn/h5io.h"
#include "mpicnn/model.h"
#include "mpicnn/train_state.h"
#include "mpicnn/checkpoint.h"
#include "mpicnn/png.h"
#include "mpicnn/evaluate.h"
#include "mpicnn/train.h"
#include "mpicnn/rundir.h"
#include "mpicnn/sweep.h"
#include "mpicnn/filter.h"
#include "mpicnn/knn.h"
#include "mpicnn/plot.h"

#endif
