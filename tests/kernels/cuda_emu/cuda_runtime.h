#pragma once
#include "convnet_cuda_emu.h"
