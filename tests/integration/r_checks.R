# What an R user does on day one, with no credential code: used by tests/integration/test_r_credentials.py
# in an IRkernel kernel of the person's server and in an RStudio-like session (clean environment).
# Prints one "name value" line per check. BOB_HOME and BOB_DATASET come from the caller.
t0 <- Sys.time()
tok <- gargle::token_fetch(scopes = "https://www.googleapis.com/auth/bigquery")
cat("gargle-class", class(tok)[1], "\n")
cat("gargle-seconds", format(as.numeric(Sys.time() - t0, units = "secs"), digits = 3), "\n")
access <- tok$credentials$access_token
cat("gargle-token-sha", substr(as.character(openssl::sha256(access)), 1, 12), "\n")

project <- Sys.getenv("GOOGLE_CLOUD_PROJECT")
dataset <- Sys.getenv("LABDECK_BQ_DATASET")
bq_query <- function(sql) {
  url <- paste0(Sys.getenv("BIGQUERY_EMULATOR_HOST"), "/bigquery/v2/projects/", project, "/queries")
  req <- httr2::request(url)
  req <- httr2::req_auth_bearer_token(req, access)
  req <- httr2::req_body_json(req, list(query = sql, useLegacySql = FALSE))
  req <- httr2::req_error(req, is_error = function(resp) FALSE)
  httr2::req_perform(req)
}
table <- paste0("`", project, ".", dataset, ".r_scores`")
created <- bq_query(paste0("CREATE OR REPLACE TABLE ", table, " AS SELECT 'r' AS lang, 42 AS score"))
cat("bq-own-create", httr2::resp_status(created), "\n")
own <- bq_query(paste0("SELECT lang, score FROM ", table))
rows <- httr2::resp_body_json(own)$rows
cat("bq-own-select", httr2::resp_status(own), rows[[1]]$f[[1]]$v, rows[[1]]$f[[2]]$v, "\n")
other <- bq_query(paste0("SELECT * FROM `", project, ".", Sys.getenv("BOB_DATASET"), ".private`"))
cat("bq-bob", httr2::resp_status(other), "\n")

home <- Sys.getenv("LABDECK_S3_HOME")
f <- tempfile()
writeLines("hello from R", f)
aws <- function(...) suppressWarnings(system2("aws", c("s3", ...), stdout = TRUE, stderr = TRUE))
status <- function(out) if (is.null(attr(out, "status"))) 0 else attr(out, "status")
t1 <- Sys.time()
up <- aws("cp", f, paste0(home, "from-r.txt"))
cat("cli-own-cp", status(up), "\n")
if (status(up) != 0) cat("cli-own-cp-output", gsub("[\r\n]+", " ", paste(up, collapse = " ")), "\n")
cat("cli-cp-seconds", format(as.numeric(Sys.time() - t1, units = "secs"), digits = 3), "\n")
back <- aws("cp", paste0(home, "from-r.txt"), "-")
cat("cli-own-read", status(back), back[1], "\n")
denied <- aws("cp", f, paste0(Sys.getenv("BOB_HOME"), "from-alice.txt"))
cat("cli-bob-cp", status(denied), any(grepl("AccessDenied", denied)), "\n")

boto3 <- tryCatch(reticulate::import("boto3"), error = function(e) e)
if (inherits(boto3, "error")) {
  cat("boto3-own UNAVAILABLE", gsub("[\r\n]+", " ", conditionMessage(boto3)), "\n")
  cat("boto3-bob UNAVAILABLE\n")
} else {
  s3 <- boto3$client("s3")
  parts <- regmatches(home, regexec("^s3://([^/]+)/(.*)$", home))[[1]]
  s3$put_object(Bucket = parts[2], Key = paste0(parts[3], "from-boto3.txt"), Body = "via reticulate")
  body <- s3$get_object(Bucket = parts[2], Key = paste0(parts[3], "from-boto3.txt"))$Body$read()$decode()
  cat("boto3-own", body, "\n")
  bob <- regmatches(Sys.getenv("BOB_HOME"), regexec("^s3://([^/]+)/(.*)$", Sys.getenv("BOB_HOME")))[[1]]
  err <- tryCatch({
    s3$get_object(Bucket = bob[2], Key = paste0(bob[3], "secret.txt"))
    "ALLOWED"
  }, error = function(e) if (grepl("AccessDenied", conditionMessage(e))) "AccessDenied" else conditionMessage(e))
  cat("boto3-bob", err, "\n")
}
