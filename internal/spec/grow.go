package spec

import "fmt"

// GrowTo decides a grow of volume name, of cur bytes, to the size asked (read
// as Create reads its size option): the new size, with unchanged=true when
// the volume has that size already (a repeated request succeeds, as a
// repeated Create does). A smaller size is refused: a filesystem in use
// cannot shrink, and an LV or image cut under its filesystem loses data.
func GrowTo(name string, cur int64, asked string) (size int64, unchanged bool, err error) {
	size, err = ParseSize(asked)
	if err != nil {
		return 0, false, fmt.Errorf("grow volume %q: %w", name, err)
	}
	switch {
	case size < cur:
		return 0, false, fmt.Errorf("grow volume %q to %s: it is %s already, and relocvol only grows volumes (a filesystem in use cannot shrink): "+
			"give a size above %s, or create a smaller volume and copy the data into it", name, FormatSize(size), FormatSize(cur), FormatSize(cur))
	case size == cur:
		return size, true, nil
	}
	return size, false, nil
}
