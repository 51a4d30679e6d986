package splice

import "errors"

// ErrUnsupported is Get's error where there is no splice(2).
var ErrUnsupported = errors.New("splice: not supported on this system")
