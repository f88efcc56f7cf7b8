package encoder

import "fmt"

// YUYVToI420 converts packed 4:2:2 into planar 4:2:0 in dst (which must hold
// width*height*3/2 bytes), averaging the chroma of each pair of rows. Most
// USB webcams deliver YUYV raw; every H.264 encoder here wants 4:2:0.
func YUYVToI420(dst, src []byte, width, height int) error {
	if width%2 != 0 || height%2 != 0 {
		return fmt.Errorf("yuyv to i420: size %dx%d must be even", width, height)
	}
	if len(src) < width*height*2 || len(dst) < width*height*3/2 {
		return fmt.Errorf("yuyv to i420: %dx%d needs %d source and %d destination bytes, have %d and %d",
			width, height, width*height*2, width*height*3/2, len(src), len(dst))
	}
	ySize := width * height
	yPlane, uPlane, vPlane := dst[:ySize], dst[ySize:ySize+ySize/4], dst[ySize+ySize/4:ySize+ySize/2]
	stride := width * 2
	for row := 0; row < height; row += 2 {
		top := src[row*stride : (row+1)*stride]
		bottom := src[(row+1)*stride : (row+2)*stride]
		yTop := yPlane[row*width : (row+1)*width]
		yBottom := yPlane[(row+1)*width : (row+2)*width]
		u := uPlane[row/2*width/2 : (row/2+1)*width/2]
		v := vPlane[row/2*width/2 : (row/2+1)*width/2]
		for col := 0; col < width/2; col++ {
			i := col * 4
			yTop[2*col], yTop[2*col+1] = top[i], top[i+2]
			yBottom[2*col], yBottom[2*col+1] = bottom[i], bottom[i+2]
			u[col] = byte((uint16(top[i+1]) + uint16(bottom[i+1]) + 1) / 2)
			v[col] = byte((uint16(top[i+3]) + uint16(bottom[i+3]) + 1) / 2)
		}
	}
	return nil
}
