// Umbrella header: includes the whole public API of rodimus.
#pragma once

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/config.hpp"
#include "rodimus/core/dtype.hpp"
#include "rodimus/core/error.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/generate/chat.hpp"
#include "rodimus/generate/generator.hpp"
#include "rodimus/generate/random.hpp"
#include "rodimus/generate/sampler.hpp"
#include "rodimus/generate/stop_strings.hpp"
#include "rodimus/io/checkpoint.hpp"
#include "rodimus/io/config_json.hpp"
#include "rodimus/io/safetensors.hpp"
#include "rodimus/io/tokenizer.hpp"
#include "rodimus/model/model.hpp"
#include "rodimus/model/transformer.hpp"
