# Install images/singleuser/r-packages.txt from the dated CRAN snapshot it names, then check every pin.
# Usage: Rscript install-r-packages.R r-packages.txt SNAPSHOT_BASE_URL
args <- commandArgs(trailingOnly = TRUE)
lines <- trimws(sub("#.*", "", readLines(args[1])))
snapshot <- sub("^# snapshot: *", "", grep("^# snapshot:", readLines(args[1]), value = TRUE))
stopifnot(length(snapshot) == 1, grepl("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", snapshot))
pins <- do.call(rbind, strsplit(lines[nzchar(lines)], "==", fixed = TRUE))
# binary packages need R's version in the user agent
options(
  repos = c(CRAN = paste0(sub("/$", "", args[2]), "/", snapshot)),
  HTTPUserAgent = sprintf("R/%s R (%s)", getRversion(), paste(getRversion(), R.version$platform, R.version$arch, R.version$os))
)
install.packages(pins[, 1], lib = "/usr/local/lib/R/site-library", Ncpus = parallel::detectCores())
got <- vapply(pins[, 1], function(p) as.character(packageVersion(p, lib.loc = "/usr/local/lib/R/site-library")), "")
wrong <- got != pins[, 2]
if (any(wrong)) stop("not the pinned versions: ", paste(pins[wrong, 1], got[wrong], "instead of", pins[wrong, 2], collapse = "; "))
