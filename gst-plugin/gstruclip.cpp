/* The "ruclip" GStreamer plugin: registers the ruclipfilter, ruclippublish and
 * ruclipoverlay elements. */
#include <gst/gst.h>

#include "gstruclipfilter.h"
#include "gstruclipoverlay.h"
#include "gstruclippublish.h"

#ifndef PACKAGE
#define PACKAGE "ruclip-gst"
#endif

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;
  ret |= GST_ELEMENT_REGISTER (ruclipfilter, plugin);
  ret |= GST_ELEMENT_REGISTER (ruclippublish, plugin);
  ret |= GST_ELEMENT_REGISTER (ruclipoverlay, plugin);
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, ruclip,
    "Zero-shot Russian video labels with ruCLIP", plugin_init, "0.1.0", "Apache 2.0", "ruclip-gst",
    "https://github.com/ai-forever/ru-clip")
