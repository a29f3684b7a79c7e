/* ruclipoverlay: draws the latest ruclipfilter result of the stream (the
 * RuClipMeta on each buffer, see ruclipmeta.h) onto the video with
 * Pango/Cairo: a panel of labels with score bars, or each region's box and
 * label. Attaches it as a GstVideoOverlayCompositionMeta when downstream
 * draws compositions itself, blends it into the pixels otherwise. */
#ifndef GST_RUCLIP_OVERLAY_H
#define GST_RUCLIP_OVERLAY_H

#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_RUCLIP_OVERLAY (gst_ruclip_overlay_get_type ())
G_DECLARE_FINAL_TYPE (GstRuClipOverlay, gst_ruclip_overlay, GST, RUCLIP_OVERLAY, GstVideoFilter)

GST_ELEMENT_REGISTER_DECLARE (ruclipoverlay);

G_END_DECLS

#endif /* GST_RUCLIP_OVERLAY_H */
