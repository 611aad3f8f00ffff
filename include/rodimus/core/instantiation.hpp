// Compiling the common host instances once per program (opt-in, for builds with many
// translation units).
//
// Every translation unit that runs Model<DefaultHostExecutionSpace, float> compiles its whole
// forward pass again (tens of seconds at -O3 each). A program built from many such units can
// compile them in one unit of its own instead:
//   - every unit is compiled with RODIMUS_EXTERN_TEMPLATES defined: the instances listed at the
//     end of model/model.hpp and train/model_grad.hpp are then declared `extern template`;
//   - one more unit defines them:
//         #define RODIMUS_INSTANTIATE_TEMPLATES
//         #include <rodimus/rodimus.hpp>
// The project's own tests, examples and benchmarks build this way (the rodimus_instances
// target, CMake option RODIMUS_EXTERN_TEMPLATES). Other instances (other execution spaces,
// weight types or policies) are compiled where they are used, as always.
#pragma once

#if defined(RODIMUS_INSTANTIATE_TEMPLATES)
#define RODIMUS_TEMPLATE_INSTANCE template
#elif defined(RODIMUS_EXTERN_TEMPLATES)
#define RODIMUS_TEMPLATE_INSTANCE extern template
#endif
