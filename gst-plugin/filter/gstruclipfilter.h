/* ruclipfilter: zero-shot Russian labels for video frames, attached to
 * buffers as RuClipMeta (see ruclipmeta.h) and optionally posted on the bus. */
#ifndef GST_RUCLIP_FILTER_H
#define GST_RUCLIP_FILTER_H

#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_RUCLIP_FILTER (gst_ruclip_filter_get_type ())
G_DECLARE_FINAL_TYPE (GstRuClipFilter, gst_ruclip_filter, GST, RUCLIP_FILTER, GstVideoFilter)

GST_ELEMENT_REGISTER_DECLARE (ruclipfilter);

G_END_DECLS

#endif /* GST_RUCLIP_FILTER_H */
