// Umbrella header of the double-precision reference implementation (rodimus::reference).
#pragma once

#include "rodimus/reference/activations.hpp"
#include "rodimus/reference/causal_attention.hpp"
#include "rodimus/reference/ddts_gate.hpp"
#include "rodimus/reference/gla_scan.hpp"
#include "rodimus/reference/layers.hpp"
#include "rodimus/reference/linear.hpp"
#include "rodimus/reference/model.hpp"
#include "rodimus/reference/rms_norm.hpp"
#include "rodimus/reference/rope.hpp"
#include "rodimus/reference/short_conv.hpp"
#include "rodimus/reference/sliding_window_attention.hpp"
#include "rodimus/reference/swiglu.hpp"
#include "rodimus/reference/transformer.hpp"
#include "rodimus/reference/weights.hpp"
