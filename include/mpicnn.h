/* mpicnn.h - umbrella header: every public module of mpicnn. */
#ifndef MPICNN_H
#define MPICNN_H

#include "mpicnn/status.h"
#include "mpicnn/kernels.h"
#include "mpicnn/layer.h"
#include "mpicnn/net.h"
#include "mpicnn/loss.h"

#endif
