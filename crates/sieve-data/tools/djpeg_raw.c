#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
/* Decode a JPEG with the system libjpeg(-turbo), as Pillow does (default options: JDCT_ISLOW,
 * fancy upsampling), to "W H\n" + raw RGB bytes. Used only to measure where the residual between
 * sieve-data's ImageNet preprocessing and the Pillow reference comes from (see docs/DATA.md):
 *   gcc -O2 -o djpeg_raw djpeg_raw.c -ljpeg
 *   ./djpeg_raw in.JPEG out.rgb
 * Not part of the build. */
int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: djpeg_raw in.jpg out.rgb\n"); return 2; }
  FILE *in = fopen(argv[1], "rb"); if (!in) return 1;
  struct jpeg_decompress_struct c; struct jpeg_error_mgr e;
  c.err = jpeg_std_error(&e); jpeg_create_decompress(&c); jpeg_stdio_src(&c, in);
  jpeg_read_header(&c, TRUE); c.out_color_space = JCS_RGB; jpeg_start_decompress(&c);
  FILE *out = fopen(argv[2], "wb"); fprintf(out, "%u %u\n", c.output_width, c.output_height);
  unsigned char *row = malloc(c.output_width * 3);
  while (c.output_scanline < c.output_height) { jpeg_read_scanlines(&c, &row, 1); fwrite(row, 1, c.output_width * 3, out); }
  jpeg_finish_decompress(&c); fclose(out); fclose(in); return 0;
}
