"""Deploy-form rewrite passes."""

from casvit_deploy.rewrite.passes import PASS_NAMES, PASSES, Pass, check_pass_names, deploy_form, to_deploy

__all__ = ["PASS_NAMES", "PASSES", "Pass", "check_pass_names", "deploy_form", "to_deploy"]
