/* The "ruclipindex" plugin: the ruclipindex element alone, so that a pipeline using
 * it loads only its own dependencies (SQLite, libpq; no LibTorch). */
#include <gst/gst.h>

#ifndef PACKAGE
#define PACKAGE "ruclip-gst"
#endif

#include "gstruclipindex.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  return GST_ELEMENT_REGISTER (ruclipindex, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, ruclipindex,
    "Stores ruclipfilter's analysed frames in a search index (SQLite or PostgreSQL)", plugin_init, "0.1.0",
    "Apache 2.0", "ruclip-gst", "https://github.com/ai-forever/ru-clip")
