// The creators of tdeploy's two plugins (one per op file), listed by library.cpp.
#pragma once

#include "attention_plugin.h"

namespace tdeploy
{

nvinfer1::IPluginCreatorV3One* windowAttentionCreator();
nvinfer1::IPluginCreatorV3One* neighborhoodAttentionCreator();

} // namespace tdeploy
