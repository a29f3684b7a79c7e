/* The "ruclip" plugin: the ruclipfilter element alone, so that a pipeline using
 * it loads only its own dependencies. */
#include <gst/gst.h>

#ifndef PACKAGE
#define PACKAGE "ruclip-gst"
#endif

#include "gstruclipfilter.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  return GST_ELEMENT_REGISTER (ruclipfilter, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, ruclip, "Zero-shot Russian video labels with ruCLIP (LibTorch)", plugin_init, "0.1.0", "Apache 2.0",
    "ruclip-gst", "https://github.com/ai-forever/ru-clip")
